; Inno Setup script: wraps dist\FocusStudio (the one-folder PyInstaller bundle) into an installer.
; Build: ISCC.exe packaging\windows\focusstudio.iss  (after packaging\windows\build.ps1)
; build.ps1 passes /DAppVersion=<focusstudio.__version__> and /DFlavourSuffix=-cuda for the GPU build.
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef FlavourSuffix
  #define FlavourSuffix ""
#endif
[Setup]
AppId={{6F1E2C1B-6B1B-4C55-9A3E-4F0C5A2F6D11}
AppName=FocusStudio
AppVersion={#AppVersion}
AppPublisher=FocusStudio
DefaultDirName={autopf}\FocusStudio
DefaultGroupName=FocusStudio
OutputDir=..\..\dist
OutputBaseFilename=FocusStudio-{#AppVersion}-windows-x64{#FlavourSuffix}-setup
Compression=lzma2
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequiredOverridesAllowed=dialog
SetupIconFile=..\..\resources\icons\focusstudio.ico
UninstallDisplayIcon={app}\FocusStudio.exe

[Files]
Source: "..\..\dist\FocusStudio\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\FocusStudio"; Filename: "{app}\FocusStudio.exe"
Name: "{autodesktop}\FocusStudio"; Filename: "{app}\FocusStudio.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop icon"; Flags: unchecked

[Run]
Filename: "{app}\FocusStudio.exe"; Description: "Start FocusStudio"; Flags: nowait postinstall skipifsilent
