"""Fixed vocabulary of the synthetic fleet: clouds, platforms and run outcome templates.

Texts are written for this project (plausible installer / SSM / Azure output), with
placeholders that the SQL stage fills per event: `{os}` `{ver}` `{pkg}` (instance platform),
`{pid}` (random), `{vm}` (VM name), `{rid}` (ARM id), `{cmd}` `{iid}` (SSM ids).
"""

from __future__ import annotations

from typing import NamedTuple

CLUSTER = "teleport.example.com"
PROXY = "teleport.example.com:443"
TELEPORT_VERSION = "18.2.1"
RETRY_SECONDS = 600  # discovery re-runs the install on a still-unenrolled instance ~every 10 min
JITTER_SECONDS = 60  # ± around each retry
DUP_DELAY_SECONDS = 60  # overlapping matchers: second run about a minute later
DISCOVERY_CONFIG = "dc-fleet"
DISCOVERY_GROUP = "prod-discovery"
SSM_DOCUMENT = "TeleportDiscoveryInstaller"
INSTALLER_SCRIPT = "default-installer"

AWS_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
AWS_REGION_WEIGHTS = (40, 20, 20, 12, 8)
AWS_ACCOUNT_WEIGHTS = (45, 25, 20, 10)
# The last account uses ambient credentials: no integration, hence no user tasks for it.
AWS_INTEGRATIONS = ("aws-prod", "aws-staging", "aws-shared", "")
AZURE_REGIONS = ("eastus", "westeurope", "westus2", "northeurope")
AZURE_RESOURCE_GROUPS = ("rg-web", "rg-data", "rg-batch", "RG-Legacy-Apps", "rg-aks-nodes")
AZURE_SUBSCRIPTIONS = 3
AZURE_INTEGRATION = "azure-prod"


class Platform(NamedTuple):
    """An OS image: SSM platform fields plus what the installer prints for it."""

    name: str
    type: str
    version: str
    os_id: str
    pkg: str  # package-manager output lines


_APT = (
    "Reading package lists...\nBuilding dependency tree...\nReading state information...\n"
    f"Setting up teleport-ent ({TELEPORT_VERSION}) ..."
)
_YUM = f"Installed:\n  teleport-ent-{TELEPORT_VERSION}-1.x86_64\n\nComplete!"
PLATFORMS = (
    Platform("Ubuntu", "Linux", "22.04", "ubuntu", _APT),
    Platform("Ubuntu", "Linux", "24.04", "ubuntu", _APT),
    Platform("Amazon Linux", "Linux", "2023", "amzn", _YUM),
    Platform("Amazon Linux", "Linux", "2", "amzn", _YUM),
    Platform("Red Hat Enterprise Linux", "Linux", "9.4", "rhel", _YUM),
    Platform("Debian GNU/Linux", "Linux", "12", "debian", _APT),
)
PLATFORM_WEIGHTS = (30, 15, 25, 10, 10, 10)

_HEAD = (
    f"Fetching the installer from https://{PROXY}/v1/webapi/scripts/installer/{INSTALLER_SCRIPT}\n"
    "Detected OS: {os} {ver} (x86_64)\n"
)
_INSTALL = (
    _HEAD + f"Installing teleport-ent {TELEPORT_VERSION}\n" + "{pkg}\n"
    "Created symlink /etc/systemd/system/multi-user.target.wants/teleport.service"
    " → /usr/lib/systemd/system/teleport.service.\n"
    "Waiting for the agent to join the cluster...\n"
)
OK_OUT = _INSTALL + f"Agent joined cluster {CLUSTER}.\n"
_NOT_READY = (
    "ERROR: node did not become ready (join cluster) within 5m0s\n"
    "   Active: activating (auto-restart) (Result: exit-code) since 12s ago\n"
)
_TOKEN = "join failure: token is expired or not found\n"
_DPKG = (
    "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process {pid} (apt-get)\n"
    "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend),"
    " is another process using it?\n"
)
_AZ_AUTH = (
    "AuthorizationFailed: The client '{client}' with object id '{client}' does not have"
    " authorization to perform action 'Microsoft.Compute/virtualMachines/runCommands/write'"
    " over scope '{rid}/runCommands/teleport-install' or the scope is invalid."
)
_AZ_NOT_RUNNING = (
    "OperationNotAllowed: Operation 'runCommand' is not allowed on VM '{vm}'"
    " since the VM is deallocated or marked to be deallocated."
)
_AZ_AGENT = (
    "VMAgentStatusCommunicationError: VM '{vm}' has not reported status for VM agent or"
    " extensions. Verify that the OS is up and healthy, the VM has a running VM agent,"
    " and that it can establish outbound connections to Azure storage."
)
_AZ_CONFLICT = (
    "Conflict: Run command extension execution is in progress."
    " Please wait for completion before invoking a run command."
)


class Outcome(NamedTuple):
    """One kind of run result; `statuses` is sampled per event ('|'-separated)."""

    kind: str
    cloud: str
    code: str
    exit_code: int
    statuses: str
    stdout: str
    stderr: str
    api_error: str | None = None
    execution_state: str = ""
    az_status: str | None = None
    issue_type: str | None = None


_SCRIPT = "ec2-ssm-script-failure"
_ENROLL = "azure-vm-enrollment-error"
OUTCOMES = (
    Outcome("aws_ok", "aws", "TDS00I", 0, "Success", OK_OUT, ""),
    Outcome("aws_step", "aws", "TDS00I", 0, "Success",
            "Content downloaded to /var/lib/amazon/ssm/{iid}/document/orchestration/{cmd}"
            "/downloadContent\n", ""),
    Outcome("aws_150", "aws", "TDS00W", 150, "Failed", _INSTALL, _NOT_READY, issue_type=_SCRIPT),
    Outcome("aws_150_token", "aws", "TDS00W", 150, "Failed", _INSTALL, _NOT_READY + _TOKEN,
            issue_type="ec2-join-failure"),
    Outcome("aws_agent_lost", "aws", "TDS00W", -1, "TimedOut|TimedOut|Failed", "", "",
            issue_type="ec2-ssm-agent-connection-lost"),
    Outcome("aws_100", "aws", "TDS00W", 100, "Failed", "",
            "ERROR: bash is required by the installer but was not found\n", issue_type=_SCRIPT),
    Outcome("aws_101", "aws", "TDS00W", 101, "Failed", _HEAD,
            "ERROR: sudo is required by the installer but was not found\n", issue_type=_SCRIPT),
    Outcome("aws_102", "aws", "TDS00W", 102, "Failed", _HEAD,
            "ERROR: curl is required by the installer but was not found\n", issue_type=_SCRIPT),
    Outcome("aws_103", "aws", "TDS00W", 103, "Failed", _HEAD,
            "ERROR: not enough free disk space: {free} MB free in /opt, 1250 MB required\n",
            issue_type=_SCRIPT),
    Outcome("aws_104", "aws", "TDS00W", 104, "Failed", _HEAD,
            f"curl: (28) Failed to connect to {PROXY.split(':')[0]} port 443 after 130{{free}} ms:"
            f" Connection timed out\nERROR: cannot reach the Teleport Proxy at https://{PROXY}\n",
            issue_type=_SCRIPT),
    Outcome("aws_curl", "aws", "TDS00W", 6, "Failed", "",
            f"curl: (6) Could not resolve host: {PROXY.split(':')[0]}\n"
            "failed to run commands: exit status 6\n", issue_type=_SCRIPT),
    Outcome("aws_legacy", "aws", "TDS00W", 0, "Failed", "",
            "----------ERROR-------\nfailed to run commands: exit status 1\n", issue_type=_SCRIPT),
    Outcome("aws_dpkg", "aws", "TDS00W", 1, "Failed", _HEAD, _DPKG, issue_type=_SCRIPT),
    Outcome("az_ok", "azure", "TAZ00I", 0, "", OK_OUT, "", execution_state="Succeeded",
            az_status="Installation completed successfully."),
    Outcome("az_150", "azure", "TAZ00W", 150, "", _INSTALL, _NOT_READY,
            execution_state="Failed", issue_type=_ENROLL),
    Outcome("az_150_token", "azure", "TAZ00W", 150, "", _INSTALL, _NOT_READY + _TOKEN,
            execution_state="Failed", issue_type=_ENROLL),
    Outcome("az_103", "azure", "TAZ00W", 103, "", _HEAD,
            "ERROR: not enough free disk space: {free} MB free in /opt, 1250 MB required\n",
            execution_state="Failed", issue_type=_ENROLL),
    Outcome("az_104", "azure", "TAZ00W", 104, "", _HEAD,
            f"ERROR: cannot reach the Teleport Proxy at https://{PROXY}\n",
            execution_state="Failed", issue_type=_ENROLL),
    Outcome("az_auth", "azure", "TAZ00W", 0, "", "", "", api_error=_AZ_AUTH,
            az_status="API call failed", issue_type="azure-vm-missing-run-commands-permission"),
    Outcome("az_not_running", "azure", "TAZ00W", 0, "", "", "", api_error=_AZ_NOT_RUNNING,
            az_status="API call failed", issue_type="azure-vm-not-running"),
    Outcome("az_agent", "azure", "TAZ00W", 0, "", "", "", api_error=_AZ_AGENT,
            az_status="API call failed", issue_type="azure-vm-agent-not-available"),
    Outcome("az_conflict", "azure", "TAZ00W", 0, "", "", "", api_error=_AZ_CONFLICT,
            az_status="API call failed", issue_type=_ENROLL),
)

# Failure kind mix per cloud (weights), drawn per instance (and per relapse).
AWS_FAILURES = (("aws_150", 20), ("aws_150_token", 10), ("aws_agent_lost", 30), ("aws_104", 13),
                ("aws_103", 9), ("aws_100", 3), ("aws_101", 4), ("aws_102", 5), ("aws_curl", 6))
# Old-style events: before the cluster upgrade (this share into the window) script failures
# were reported with exit code 0, status Failed (still code TDS00W).
LEGACY_UNTIL_SHARE = 0.2
LEGACY_KINDS = ("aws_150", "aws_150_token", "aws_104", "aws_103", "aws_100", "aws_101",
                "aws_102", "aws_curl")
AZURE_FAILURES = (("az_auth", 25), ("az_agent", 15), ("az_not_running", 15), ("az_150", 17),
                  ("az_150_token", 8), ("az_104", 10), ("az_103", 10))
