"""Networks: drivers behind one interface (bridge, macvlan), the networks the daemon knows,
instance NIC plumbing and proxy forwarding."""
from corral.config import network as _keys  # noqa: F401  (register the key declarations)
from corral.errors import BadRequest, NotImplementedFeature
from corral.network.drivers.base import NetworkDriver, NetworkError  # noqa: F401
from corral.network.drivers.bridge import BridgeDriver
from corral.network.drivers.macvlan import MacvlanDriver

DRIVERS: dict[str, type[NetworkDriver]] = {"bridge": BridgeDriver, "macvlan": MacvlanDriver}
# Types LXD 5.0 has that Corral does not run, with the missing piece named.
UNAVAILABLE = {
    "ovn": "OVN needs openvswitch and geneve, which this kind of host's kernel lacks",
    "sriov": "no SR-IOV capable device",
    "physical": "physical networks",
}


def driver_class(name: str) -> type[NetworkDriver]:
    if name in DRIVERS:
        return DRIVERS[name]
    if name in UNAVAILABLE:
        raise NotImplementedFeature(f'network type "{name}" ({UNAVAILABLE[name]})')
    raise BadRequest(f'Unknown network type "{name}"')
