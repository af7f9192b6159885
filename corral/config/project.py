"""Project configuration keys (LXD 5.0), those Corral implements."""
from corral.config.keys import PROJECT, Key, declare, parse_bool

declare(
    Key("features.images", PROJECT, parse_bool, default="true",
        description="Separate set of images and image aliases for the project"),
    Key("features.profiles", PROJECT, parse_bool, default="true",
        description="Separate set of profiles for the project"),
    Key("features.storage.volumes", PROJECT, parse_bool, default="true",
        description="Separate set of storage volumes for the project"),
    Key("features.networks", PROJECT, parse_bool, default="false",
        description="Separate set of networks for the project"),
    Key("user.*", PROJECT, description="Free form user key/value storage"),
)
