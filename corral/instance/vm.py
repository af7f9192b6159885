"""The `virtual-machine` instance type: a VM run by QEMU over QMP (corral/instance/drivers/qemu.py), its
disk the `root.img` of its storage volume, the inside reached through our guest agent over virtio-serial
(corral/instance/agent/). Records, snapshots, rename and delete are the container's
(corral/instance/container.py) with the volume type `virtual-machine`; what differs is here."""
from __future__ import annotations

import asyncio
import logging
import os
import threading

from corral import config, timeutil
from corral.config.values import parse_cpuset, parse_size
from corral.errors import BadRequest, CorralError
from corral.instance import vmstate
from corral.instance.container import Container, stop_devices
from corral.instance.devices import instance_devices
from corral.instance.devices.nic import Nic
from corral.instance.drivers.base import DriverError
from corral.instance.drivers.qemu import QemuDriver, VMSpec
from corral.instance.drivers.qemudevices import VMDisk
from corral.instance.drivers import qemuhost
from corral.instance.types import register

log = logging.getLogger(__name__)
DEFAULT_MEMORY = 1024 ** 3      # LXD: 1GiB
AGENT_WAIT = 0.5                # how long a state read waits for an agent that is not connected


def memory_of(cfg: dict) -> int:
    raw = cfg.get("limits.memory") or ""
    if not raw:
        return DEFAULT_MEMORY
    if raw.endswith("%"):
        return int(qemuhost.host_memory() * float(raw[:-1]) / 100)
    return int(config.value(config.INSTANCE, {"limits.memory": raw}, "limits.memory"))


def cpus_of(cfg: dict) -> int:
    raw = cfg.get("limits.cpu") or ""
    if not raw:
        return 1
    if raw.isdigit():
        return max(int(raw), 1)
    cpus = set()
    for part in parse_cpuset(raw).split(","):   # a CPU set ("0-1,4"): as many vCPUs as CPUs in it
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return max(len(cpus), 1)


def check_config(cfg: dict) -> None:
    """What a VM's expanded config must satisfy before anything is made or changed."""
    mem = memory_of(cfg)
    host = qemuhost.host_memory()
    if host and mem > host:
        raise BadRequest(f"limits.memory ({cfg.get('limits.memory')}) is more than the host's memory "
                         f"({host // (1024 * 1024)}MiB)")
    if mem < 64 * 1024 * 1024:
        raise BadRequest("limits.memory must be at least 64MiB for a virtual machine")
    if cfg.get("raw.qemu"):
        config.value(config.INSTANCE, {"raw.qemu": cfg["raw.qemu"]}, "raw.qemu")


@register
class VirtualMachine(Container):
    type_name = "virtual-machine"
    api_type = "virtual-machine"
    vtype = "virtual-machine"

    @classmethod
    def make_driver(cls, insts):
        drv = QemuDriver(insts.d.paths.join("logs"), on_stopped=insts.on_stopped_thread)
        drv.agents = {}
        return drv

    @property
    def pool_kw(self) -> dict:
        return {"vtype": self.vtype}

    @property
    def rootfs(self) -> str:   # a VM has none on the host: files go through the agent
        raise BadRequest("Virtual machines have no root filesystem on the host")

    @property
    def disk_path(self) -> str:
        return self.pool.instance_block_path(self.volume)

    # ---- the agent -------------------------------------------------------------------------

    def agent(self):
        """This VM's agent connection (made once per VM and daemon)."""
        from corral.instance.agent import AgentClient
        agents = self.driver.agents
        client = agents.get(self.dname)
        if client is None:
            client = agents[self.dname] = AgentClient(self.driver.socket(self.dname, "agent"), hostname=self.name,
                                                      on_stream=self._devlxd_stream)
        return client

    def _devlxd_stream(self, sock) -> None:
        devlxd = getattr(self.d, "devlxd", None)
        if devlxd is None:
            sock.close()
            return
        devlxd.serve_vm_thread(self.project, self.name, sock)

    def agent_ready(self, timeout: float = AGENT_WAIT) -> bool:
        """Whether the agent answers; timeout 0: never wait (state reads of listings), a connection
        is tried in the background instead, once at a time per VM."""
        try:
            client = self.agent()
            if client.connected:
                return True
            if timeout <= 0:
                self._connect_later(client)
                return False
            client.connect(timeout=timeout)
            return client.connected
        except Exception:  # noqa: BLE001 - not running (yet): callers say so
            return False

    def _connect_later(self, client) -> None:
        pending = self.driver.__dict__.setdefault("agent_connecting", set())
        if self.dname in pending:
            return
        pending.add(self.dname)

        def go():
            try:
                client.connect(timeout=AGENT_WAIT * 4)
            except Exception:  # noqa: BLE001 - the next read tries again
                pass
            finally:
                pending.discard(self.dname)
        threading.Thread(target=go, name=f"agent-{self.dname}", daemon=True).start()

    def _need_agent(self):
        if self.status() != "Running":
            raise BadRequest("Instance is not running")
        if not self.agent_ready(timeout=2.0):
            raise BadRequest("LXD VM agent isn't currently running")
        return self.agent()

    def _forget_agent(self) -> None:
        client = self.driver.agents.pop(self.dname, None)
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    # ---- reading ---------------------------------------------------------------------------

    def state_blocking(self) -> dict:
        status = self.status()
        agent_state = None
        if status == "Running" and self.agent_ready(timeout=0):
            try:
                agent_state = self.agent().state()
            except Exception:  # noqa: BLE001 - QEMU's view then
                agent_state = None
        qmp = None
        if status in ("Running", "Frozen") and agent_state is None:
            try:
                qmp = self.driver.qmp_state(self.dname)
            except DriverError:
                qmp = None
        leases = self._leases() if agent_state is None and status == "Running" else None
        if agent_state is not None and agent_state.get("disk"):   # the agent's mount points: LXD's root device
            disk = dict(agent_state["disk"])
            if "/" in disk:
                disk[self._root_name()] = {"usage": disk.pop("/").get("usage", 0)}
            agent_state = {**agent_state, "disk": disk}
        return vmstate.render(status, self.driver.init_pid(self.dname), self.config, agent_state, qmp, leases)

    def _leases(self) -> dict[str, list[tuple[str, str]]]:
        """MAC -> addresses the instance's managed networks leased (dnsmasq's lease files)."""
        out: dict[str, list[tuple[str, str]]] = {}
        for c in self.devices.values():
            net = c.get("network") or c.get("parent") if c.get("type") == "nic" else None
            drv = self.d.networks.managed(net) if net else None
            if drv is None:
                continue
            prefix = str(drv.ipv4.network.prefixlen) if getattr(drv, "ipv4", None) is not None else ""
            try:
                for lease in drv.leases():
                    out.setdefault(lease["hwaddr"], []).append((lease["address"], prefix))
            except Exception:  # noqa: BLE001 - no leases then
                continue
        return out

    def _warm_state(self) -> None:
        pass

    def spec(self) -> VMSpec:
        cfg = self.config
        raw = config.value(config.INSTANCE, cfg, "raw.qemu") if cfg.get("raw.qemu") else []
        return VMSpec(name=self.dname, uuid=cfg.get("volatile.uuid") or "", cpus=cpus_of(cfg), memory=memory_of(cfg),
                      secureboot=bool(config.value(config.INSTANCE, cfg, "security.secureboot")),
                      nvram=os.path.join(self.mount_path, "qemu.nvram"),
                      disks=[VMDisk(self._root_name(), self.disk_path, bootindex=0)],
                      log_dir=self.insts.log_dir(self.project, self.name), extra_args=list(raw))

    # ---- start and stop --------------------------------------------------------------------

    async def start(self, requestor: dict | None = None) -> None:
        from corral.instance.devices import vmnic
        inst = self.loaded
        self.check_startable()
        check_config(inst.config)
        # LXD: an image without secure-boot support needs security.secureboot=false on the instance.
        if inst.rec["config"].get("image.requirements.secureboot") == "false" and \
                config.value(config.INSTANCE, inst.config, "security.secureboot"):
            raise BadRequest("The image used by this instance is incompatible with secureboot. Please set "
                             "security.secureboot=false on the instance")
        if not inst.config.get("volatile.uuid"):
            import uuid
            new = str(uuid.uuid4())
            await self.insts.set_volatile(inst.project, inst.name, {"volatile.uuid": new})
            inst.config["volatile.uuid"] = new
        spec = self.spec()
        devices = instance_devices(self.d, inst)
        started, fds = [], []
        try:
            for dev in devices:
                if isinstance(dev, Nic):
                    nic = await vmnic.create(dev)
                    started.append(dev)
                    if nic.fd is not None:
                        fds.append(nic.fd)
                    spec.nics.append(nic)
                elif dev.type == "disk" and dev.config.get("path") == "/":
                    continue   # the root disk: spec.disks
                else:
                    raise BadRequest(f'Device "{dev.name}": {dev.type} devices are not supported by virtual '
                                     "machines yet")
            boot_order(spec, self.devices)
            await asyncio.to_thread(self._prepare_disk)
            await asyncio.to_thread(self.driver.start, spec)
        except DriverError as e:
            await stop_devices(started)
            raise BadRequest(e.message) from None
        except BaseException:
            await stop_devices(started)
            raise
        finally:
            for fd in fds:
                os.close(fd)
        self._forget_agent()
        # Templates are the guest's business (LXD hands them to its agent): none are applied from the host.
        await self.insts.set_volatile(inst.project, inst.name, {"volatile.last_state.power": "RUNNING",
                                                                 "volatile.apply_template": None},
                                      last_used=timeutil.now())
        self._lifecycle("instance-started", requestor)

    def _prepare_disk(self) -> None:
        """The root disk grown to the root device's `size` (never shrunk) before QEMU opens it."""
        size = self.root_size()
        if size:
            self.pool.grow_instance_disk(self.volume, size)

    async def resize_root(self, new) -> None:
        """An update's root disk `size` (new: the Loaded after it), applied now: the disk grown (a running
        VM's QEMU told, block_resize); smaller than the disk is: LXD's refusal, nothing changed."""
        raw = next((d.get("size") for d in new.devices.values() if d.get("type") == "disk" and d.get("path") == "/"
                    and not d.get("source")), None)
        if not raw or raw == next((d.get("size") for d in self.devices.values() if d.get("type") == "disk"
                                   and d.get("path") == "/" and not d.get("source")), None):
            return
        size = int(parse_size(raw))
        try:
            grew = await asyncio.to_thread(self.pool.grow_instance_disk, self.volume, size)
        except CorralError as e:   # LXD's words: the device named before the storage layer's reason
            raise BadRequest(f'Failed to update device "{self._root_name()}": {e.message}') from None
        if grew and self.status() in ("Running", "Frozen"):
            real = await asyncio.to_thread(os.path.getsize, self.disk_path)
            try:
                await asyncio.to_thread(self.driver.monitor(self.dname).execute, "block_resize",
                                        {"node-name": f"drive-{self._root_name()}", "size": real})
            except DriverError as e:
                raise BadRequest(f"The disk grew but QEMU could not be told: {e.message}") from None

    def _root_name(self) -> str:
        return next((n for n, d in sorted(self.devices.items()) if d.get("type") == "disk" and d.get("path") == "/"
                     and not d.get("source")), "root")

    def root_size(self) -> int | None:
        for dev in self.devices.values():
            if dev.get("type") == "disk" and dev.get("path") == "/" and not dev.get("source") and dev.get("size"):
                return int(parse_size(dev["size"]))
        return None

    async def stopped(self) -> None:
        self._forget_agent()
        await stop_devices(instance_devices(self.d, self.loaded, tolerant=True))
        await self.insts.set_volatile(self.project, self.name, {"volatile.last_state.power": "STOPPED"})

    async def freeze(self, requestor: dict | None = None) -> None:
        if self.status() != "Running":
            raise BadRequest("The instance isn't running")
        await asyncio.to_thread(self.driver.freeze, self.dname)
        self._lifecycle("instance-paused", requestor)

    # ---- hot-plug --------------------------------------------------------------------------

    async def hotplug_nic(self, dev: Nic) -> None:
        from corral.instance.devices import vmnic
        nic = await vmnic.create(dev)
        try:
            await asyncio.to_thread(self.driver.add_nic, self.dname, nic)
        except DriverError as e:
            await dev.stop()
            raise BadRequest(e.message) from None
        finally:
            if nic.fd is not None:
                os.close(nic.fd)

    async def hotunplug_nic(self, dev: Nic) -> None:
        try:
            await asyncio.to_thread(self.driver.remove_nic, self.dname, dev.name)
        except DriverError as e:
            raise BadRequest(e.message) from None
        await dev.stop()

    # ---- inside the VM: through the agent --------------------------------------------------

    def exec(self, command, env, cwd="/", uid=0, gid=0, interactive=False, width=80, height=24):
        return self._need_agent().exec(command, env, cwd=cwd, uid=uid, gid=gid, interactive=interactive,
                                       width=width, height=height)

    def file_get(self, path: str):
        return self._need_agent().file_get(path)

    def file_put(self, path, kind, data=None, uid=None, gid=None, mode=None, append=False) -> None:
        self._need_agent().file_put(path, kind, data, uid=uid, gid=gid, mode=mode, append=append)

    def file_delete(self, path: str) -> None:
        self._need_agent().file_delete(path)


def boot_order(spec: VMSpec, devices: dict) -> None:
    """bootindex of the disks and NICs from the devices' `boot.priority` (higher boots first, as LXD; the
    root disk next among those without one, then the rest by name)."""
    def key(name: str) -> tuple:
        conf = devices.get(name) or {}
        prio = int(conf["boot.priority"]) if conf.get("boot.priority") else None
        root = conf.get("type") == "disk" and conf.get("path") == "/"
        return (0, -prio, name) if prio is not None else (1, 0 if root else 1, name)
    items = {d.name: d for d in spec.disks} | {n.name: n for n in spec.nics}
    for i, name in enumerate(sorted(items, key=key)):
        items[name].bootindex = i



