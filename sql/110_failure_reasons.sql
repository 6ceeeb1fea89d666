-- failure_reasons: rules naming why an attempt failed, each with a one-line remedy (after
-- Teleport's "Troubleshooting Server Auto-Discovery" guide, in our words). A failed attempt takes
-- the matching rule of lowest priority, then reason. match_kind: `exit_code` (pattern is the
-- integer; attempts with an API error never match it), `api_error_like` / `output_like`
-- (case-insensitive LIKE on the API error / on stdout + newline + stderr).
-- Extend it with `<store>/failure_reasons.csv` (same columns, header row), which
-- pipeline.analytics.connect appends; a lower priority there overrides a shipped rule.
-- grain: one row per rule. inputs: none.
CREATE OR REPLACE TABLE failure_reasons AS
SELECT CAST(priority AS INTEGER) AS priority, reason, match_kind, pattern, remedy
FROM (VALUES
    (10, 'Join token expired', 'output_like', '%token is expired or not found%',
     'The agent''s join token expired or was deleted: check the token the discovery service installs with (its TTL and the accounts it allows).'),
    (20, 'DNS resolution failed', 'output_like', '%could not resolve host%',
     'The instance cannot resolve the Proxy''s host name: fix its DNS resolver or give the installer a Proxy address it can resolve.'),
    (20, 'Instance not managed by SSM', 'output_like', '%InvalidInstanceId%',
     'SSM does not manage this instance: run the SSM agent and attach an instance profile with AmazonSSMManagedInstanceCore in the matcher''s region.'),
    (20, 'Instance not managed by SSM', 'api_error_like', '%InvalidInstanceId%',
     'SSM does not manage this instance: run the SSM agent and attach an instance profile with AmazonSSMManagedInstanceCore in the matcher''s region.'),
    (20, 'Missing Run Command permission', 'api_error_like', '%AuthorizationFailed%',
     'The discovery identity may not use Run Command on this VM: grant it run-command write and read (and VM read) on the VM''s scope.'),
    (20, 'Azure VM agent not available', 'api_error_like', '%VMAgentStatusCommunicationError%',
     'The VM guest agent is not reporting: check that the VM is healthy, its agent service runs and it can reach Azure.'),
    (20, 'VM not running', 'api_error_like', '%deallocat%',
     'The VM is stopped or deallocated: start it, or narrow the matcher to running VMs.'),
    (20, 'Run Command already in progress', 'api_error_like', '%run command%in progress%',
     'Another Run Command was still executing on the VM: let it finish before the next attempt (the instance''s duplicate runs show whether installs start too close together).'),
    (20, 'Package manager locked', 'output_like', '%could not get lock%',
     'Another package manager run held the lock (cloud-init, automatic updates, or another install at the same time): retry later (the instance''s duplicate runs show whether installs start too close together).'),
    (30, 'bash missing', 'exit_code', '100',
     'The installer script runs under bash: use an image that has bash.'),
    (30, 'sudo missing', 'exit_code', '101',
     'The installer needs sudo: add sudo to the image.'),
    (30, 'curl missing', 'exit_code', '102',
     'The installer downloads with curl: add curl to the image.'),
    (30, 'Not enough disk space', 'exit_code', '103',
     'Less than 1250 MB is free in /opt (or /): free space or grow the volume.'),
    (30, 'Proxy unreachable', 'exit_code', '104',
     'The instance cannot reach the Proxy''s HTTPS endpoint: allow outbound 443 to it (security groups, network ACLs, firewalls, HTTP proxies).'),
    (30, 'Agent did not join', 'exit_code', '150',
     'Teleport was installed but the agent did not join in time: read its logs (journalctl -u teleport) and check the join method and token.'),
    (30, 'SSM agent lost', 'exit_code', '-1',
     'The SSM agent lost its connection or the instance is not registered with SSM: check that the agent runs and can reach the SSM endpoints.'),
    (40, 'Agent did not join', 'output_like', '%did not become ready%',
     'Teleport was installed but the agent did not join in time: read its logs (journalctl -u teleport) and check the join method and token.'),
    (40, 'Not enough disk space', 'output_like', '%no space left on device%',
     'Less than 1250 MB is free in /opt (or /): free space or grow the volume.'),
    (40, 'curl missing', 'output_like', '%curl: command not found%',
     'The installer downloads with curl: add curl to the image.'),
    (40, 'sudo missing', 'output_like', '%sudo: command not found%',
     'The installer needs sudo: add sudo to the image.'),
    (40, 'Proxy unreachable', 'output_like', '%failed to connect to%',
     'The instance cannot reach the Proxy''s HTTPS endpoint: allow outbound 443 to it (security groups, network ACLs, firewalls, HTTP proxies).'),
    (80, 'Script failed without detail', 'output_like', '%failed to run commands: exit status%',
     'SSM reported only the script''s exit status: read the full command output in SSM (invocation URL) or rerun the installer on the instance.'),
    (90, 'Cloud API error', 'api_error_like', '_%',
     'The cloud''s Run Command API call failed before the installer ran: read the API error of the attempt.')
) AS rules(priority, reason, match_kind, pattern, remedy);
