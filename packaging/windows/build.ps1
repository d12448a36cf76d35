# Builds the one-folder FocusStudio bundle on Windows and, if Inno Setup 6 is installed, the installer.
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
# GPU build (a separate artifact): set the torch wheel first, e.g.
#   $env:FOCUSSTUDIO_TORCH_SPEC = "torch==2.13.0"; $env:FOCUSSTUDIO_TORCH_INDEX_URL = "https://download.pytorch.org/whl/cu128"
# Not built or tested by the team (no Windows machine): see README "Standalone app".
$ErrorActionPreference = "Stop"
$Root = Resolve-Path "$PSScriptRoot\..\.."
Set-Location $Root
$Venv = "$Root\build\packaging\venv"
$Python = "$Venv\Scripts\python.exe"
$TorchSpec = if ($env:FOCUSSTUDIO_TORCH_SPEC) { $env:FOCUSSTUDIO_TORCH_SPEC } else { "torch==2.13.0" }
# PyTorch's CPU index by default: the Windows wheels there are CPU-only, never a CUDA download.
$TorchIndex = if ($env:FOCUSSTUDIO_TORCH_INDEX_URL) { $env:FOCUSSTUDIO_TORCH_INDEX_URL } else { "https://download.pytorch.org/whl/cpu" }
$Start = Get-Date

function Invoke-Checked([string]$Exe, [string[]]$Arguments) {
  & $Exe @Arguments
  if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed ($LASTEXITCODE)" }
}

py -3.11 -m venv --clear $Venv
Invoke-Checked $Python @("-m", "pip", "install", "--upgrade", "pip")
Invoke-Checked $Python @("-m", "pip", "install", $TorchSpec, "--extra-index-url", $TorchIndex)
Invoke-Checked $Python @("-m", "pip", "install", ".[gui,packaging]")
$env:FOCUSSTUDIO_BUNDLE_FLAVOUR = (& $Python -c "import torch; print('cuda' if torch.version.cuda else 'cpu')").Trim()
Invoke-Checked $Python @("-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
  "--distpath", "$Root\dist", "--workpath", "$Root\build\packaging\work", "packaging\focusstudio.spec")

# FocusStudio.exe is windowed (no console); focusstudio-cli.exe prints, so it runs the self-test.
Invoke-Checked "$Root\dist\FocusStudio\focusstudio-cli.exe" @("--self-test")
$Size = (Get-ChildItem -Recurse "$Root\dist\FocusStudio" | Measure-Object -Property Length -Sum).Sum / 1MB
Write-Host ("== dist\FocusStudio: {0:N0} MB, {1:N0} s" -f $Size, ((Get-Date) - $Start).TotalSeconds)

$Version = (& $Python -c "import focusstudio; print(focusstudio.__version__)").Trim()
$Suffix = if ($env:FOCUSSTUDIO_BUNDLE_FLAVOUR -eq "cuda") { "-cuda" } else { "" }
$Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe"
if (Test-Path $Iscc) {
  Invoke-Checked $Iscc @("/DAppVersion=$Version", "/DFlavourSuffix=$Suffix", "packaging\windows\focusstudio.iss")
} else {
  Write-Host "Inno Setup 6 not found: skipped the installer (dist\FocusStudio is the portable app)"
}
