"""Files of ``config/`` installed with the package: the documented default config and the
systemd unit (symlinks here, copied into wheels), printed by ``trioredis-server
--print-default-config`` and ``--print-systemd-unit``."""
