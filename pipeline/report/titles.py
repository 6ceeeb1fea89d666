"""User task titles: what tctl shows for an issue type (facts from Teleport, not its text).

tctl takes a title from the first line of `lib/usertasks/descriptions/<issue-type>.md` when it is
`# <title>` (AWS rows through DescriptionForDiscoverEC2Issue, Azure rows through its Azure VM
twin; all read the same embedded folder); an issue type with no file, or whose file has no `# `
first line, shows as its raw string. To extend: add `issue-type: title` below, with its source.

Read from gravitational/teleport (path@commit of the version read):
  lib/usertasks/descriptions.go@4e2b459acb1b (title = first line after "# ")
  ec2-ssm-script-failure, ec2-ssm-agent-connection-lost, ec2-ssm-unsupported-os,
    ec2-join-failure: spec §2 (as tctl printed them when compared; connection-lost@925286cd1d77,
    unsupported-os@66ddc49e858e, join-failure@6752e2937273). The script-failure file read
    (@136007c51130) has no title line; another indexed version, commit not shown, reads
    "SSM - Teleport Agent installation failure": not adopted until a release is pinned down.
  ec2-perm-account-denied@737b6791bc88, ec2-perm-org-denied@fef5b3594ca3
  azure-vm-agent-not-available@fa6e05100ccd, azure-vm-enrollment-error@67d6110888e9,
  azure-vm-missing-run-commands-permission@0c8faf441f10, azure-vm-not-running@401083b4c309,
  azure-vm-subscription-list-denied@3b7ccc8edf11,
  azure-vm-windows-auth-package-*@40d959d32b16 (eight files)
  eks-authentication-mode-unsupported@401083b4c309, eks-perm-cluster-denied@065ddb62749f,
  eks-perm-region-denied@8341117591c2, rds-iam-auth-disabled@ed7643c2fc34
No `# ` title in the versions read (so raw): ec2-ssm-agent-not-registered@aba3af1c8ec1,
ec2-ssm-invocation-failure@284fd7565f2a, eks-agent-not-connecting@8a4689aca570,
eks-cluster-unreachable@ed7d196fe131, eks-missing-endpoint-public-access@ed7d196fe131,
eks-status-not-active@dabbff4b8e9d.
"""

from __future__ import annotations

ISSUE_TITLES: dict[str, str] = {
    # EC2 (discover-ec2)
    "ec2-ssm-script-failure": "SSM Script failure",
    "ec2-ssm-agent-connection-lost": "SSM Agent lost connection",
    "ec2-ssm-unsupported-os": "Unsupported Operating System",
    "ec2-join-failure": "EC2 Join Failure",
    "ec2-perm-account-denied": "Missing AWS account permissions",
    "ec2-perm-org-denied": "Missing AWS organization permissions",
    # Azure VMs (discover-azure-vm)
    "azure-vm-enrollment-error": "Enrollment failed",
    "azure-vm-agent-not-available": "VM agent not available",
    "azure-vm-missing-run-commands-permission": "Missing Run Command permissions",
    "azure-vm-not-running": "VMs not running",
    "azure-vm-subscription-list-denied": "Cannot access Azure subscriptions",
    "azure-vm-windows-auth-package-checksum-mismatch": "Installer checksum mismatch",
    "azure-vm-windows-auth-package-download-failure": "Installer download failure",
    "azure-vm-windows-auth-package-execution-failure": "Installer execution failure",
    "azure-vm-windows-auth-package-insufficient-disk-space": "Insufficient disk space",
    "azure-vm-windows-auth-package-machine-domain-joined": "VM is domain-joined",
    "azure-vm-windows-auth-package-no-private-ip": "No private IP address found",
    "azure-vm-windows-auth-package-staging-dir-unsafe": "Unsafe installer staging directory",
    "azure-vm-windows-auth-package-unsupported-windows-version": "Unsupported Windows version",
    # other task types (same folder, so tctl titles them too)
    "eks-authentication-mode-unsupported": "Cluster authentication mode unsupported",
    "eks-perm-cluster-denied": "Missing EKS cluster permissions",
    "eks-perm-region-denied": "Missing EKS region permissions",
    "rds-iam-auth-disabled": "IAM Auth disabled",
}


def user_task_title(issue: str) -> str:
    """The title tctl shows for an issue type; the raw issue when it has none, "" without one."""
    return ISSUE_TITLES.get(issue) or issue
