"""The REST API: one module per endpoint group, thin handlers over the domain modules."""
from corral.api import events, images, instances, internal, misc, operations, profiles, projects, root, storage

ENDPOINT_MODULES = [root, profiles, projects, operations, events, misc, storage, images, instances, internal]
