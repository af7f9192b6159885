"""API extensions Corral advertises: LXD 5.0's names, only for behaviour that is implemented.

tests/api/test_extensions.py exercises every name listed here; add a check there when adding one.
"""

EXTENSIONS = [
    "etag",
    "patch",
    "profile_usedby",
    "entity_description",
    "operation_description",
    "event_lifecycle",
    "event_lifecycle_requestor_address",
    "resources",
    "resources_cpu_socket",
    "resources_system",
    "projects",
    "warnings",
    "api_os",
    "event_location",
    "event_project",
    "operation_location",
    "storage",
    "instances",
    "container_full",
    "api_filtering",
    "file_delete",
    "file_append",
    "directory_manipulation",
    "file_symlinks",
    "file_get_symlink",
    "container_exec_recording",
    "container_exec_signal_handling",
    "snapshot_expiry",
    "snapshot_expiry_creation",
    "container_edit_metadata",
    "console",
]
