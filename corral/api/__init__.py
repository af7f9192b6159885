"""The REST API: one module per endpoint group, thin handlers over the domain modules."""
from corral.api import certificates, cluster, cluster_evacuate, cluster_groups, cluster_internal, cluster_move, events, images, instances, internal, metrics, misc, networks, operations, profiles, projects, root, storage, storage_volume_backups, storage_volumes, streams, ui

ENDPOINT_MODULES = [root, certificates, profiles, projects, operations, events, misc, metrics, cluster, cluster_groups, storage, storage_volume_backups, storage_volumes, networks, images, instances, internal, cluster_internal, cluster_evacuate, cluster_move, streams, ui]
