"""Backups as files: the tarball format LXD reads and writes (`format`, `tarball`) and the
`backup.yaml` every instance volume carries (`yamlfile`). No daemon state here: instance/ and
storage/ both build on it."""
