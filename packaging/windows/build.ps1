# Builds the one-folder FocusStudio bundle on Windows and, if Inno Setup is installed, the installer.
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
# Not built or tested by the team yet (no Windows machine): see README "Standalone app".
$ErrorActionPreference = "Stop"
$Root = Resolve-Path "$PSScriptRoot\..\.."
Set-Location $Root
$Venv = "$Root\build\packaging\venv"
py -3.11 -m venv --clear $Venv
& "$Venv\Scripts\python.exe" -m pip install --upgrade pip
& "$Venv\Scripts\python.exe" -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
& "$Venv\Scripts\python.exe" -m pip install ".[gui]" pyinstaller
& "$Venv\Scripts\pyinstaller.exe" --noconfirm --clean --distpath "$Root\dist" --workpath "$Root\build\packaging\work" packaging\focusstudio.spec
& "$Root\dist\FocusStudio\FocusStudio.exe" --self-test
if ($LASTEXITCODE -ne 0) { throw "self-test failed" }
$Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe"
if (Test-Path $Iscc) { & $Iscc packaging\windows\focusstudio.iss } else { Write-Host "Inno Setup not found: skipped the installer" }
