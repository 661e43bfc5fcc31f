<#
.SYNOPSIS
  Install mediabot on a Windows VM as a restart-on-failure startup task, and open the firewall.
.DESCRIPTION
  Creates C:\mediabot\venv (Python 3.10+ must be on PATH as `py`), installs the wheel, registers a
  scheduled task that runs `mediabot run --config <Config>` at boot as SYSTEM and restarts it on
  failure, and adds inbound firewall rules for the webhook (TCP) and media (UDP) ports.
  Stop it with `Stop-ScheduledTask mediabot`: mediabot drains (stops accepting calls, ends them)
  on Ctrl+Break/close before exiting.
#>
param(
    [Parameter(Mandatory = $true)][string]$Wheel,
    [Parameter(Mandatory = $true)][string]$Config,
    [int]$WebhookPort = 9441,
    [int]$MediaPort = 8445,
    [string]$Root = "C:\mediabot"
)
$ErrorActionPreference = "Stop"

if (-not (Test-Path $Config)) { throw "config file not found: $Config" }
New-Item -ItemType Directory -Force -Path $Root | Out-Null
$venv = Join-Path $Root "venv"
if (-not (Test-Path (Join-Path $venv "Scripts\python.exe"))) { py -3 -m venv $venv }
& (Join-Path $venv "Scripts\python.exe") -m pip install --upgrade pip
& (Join-Path $venv "Scripts\python.exe") -m pip install $Wheel
# Validate the configuration now rather than at the first boot (secrets must be in the
# machine environment already, under the names the config gives).
& (Join-Path $venv "Scripts\python.exe") -c "import sys; from bot.config import load_config; load_config(sys.argv[1])" $Config
if ($LASTEXITCODE -ne 0) { throw "configuration check failed" }

$exe = Join-Path $venv "Scripts\mediabot.exe"
$action = New-ScheduledTaskAction -Execute $exe -Argument "run --config `"$Config`"" -WorkingDirectory $Root
$trigger = New-ScheduledTaskTrigger -AtStartup
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
    -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable
$principal = New-ScheduledTaskPrincipal -UserId "SYSTEM" -RunLevel Highest
Register-ScheduledTask -TaskName "mediabot" -Action $action -Trigger $trigger -Settings $settings `
    -Principal $principal -Force | Out-Null

foreach ($rule in @(
        @{ Name = "mediabot webhook (TCP $WebhookPort)"; Protocol = "TCP"; Port = $WebhookPort },
        @{ Name = "mediabot media (UDP $MediaPort)"; Protocol = "UDP"; Port = $MediaPort })) {
    Get-NetFirewallRule -DisplayName $rule.Name -ErrorAction SilentlyContinue | Remove-NetFirewallRule
    New-NetFirewallRule -DisplayName $rule.Name -Direction Inbound -Action Allow `
        -Protocol $rule.Protocol -LocalPort $rule.Port | Out-Null
}
Start-ScheduledTask -TaskName "mediabot"
Write-Host "mediabot installed in $Root; webhook TCP $WebhookPort, media UDP $MediaPort"
