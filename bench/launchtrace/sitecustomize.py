"""The tracer of bench/launch_profile.py: with CORRAL_TRACE=1 in the environment, wraps the launch
path's functions (TARGETS) once their modules load and logs each call's wall time and database round
trips to TRACE_OUT. A name that no longer exists is logged as MISSING. Nothing else changes."""
import sys, time, functools, importlib.abc, importlib.util, inspect, threading, os, contextvars
OUT = None
T0 = time.perf_counter()
depth = contextvars.ContextVar("depth", default=0)
DB = {"n": 0}
TARGETS = {
  "corral.instance.creation": ["create", "_create", "register", "_image_profiles"],
  "corral.instance.container": ["Container.start", "Container.spec", "startup_snapshot", "render_templates", "stop_devices"],
  "corral.instance.layout": ["write_backup_file", "sync"],
  "corral.instance.manager": ["Instances.load", "Instances._profiles", "Instances.set_volatile", "Instances.names", "Instances.snapshots", "Instances.instance"],
  "corral.image.images": ["Images.get", "Images.resolve", "Images.touch", "Images.ensure_unpacked"],
  "corral.storage.pool": ["Pool.create_instance_from_image", "Pool.mount"],
  "corral.instance.drivers.lxc": ["LXCDriver.create", "LXCDriver.start", "LXCDriver._lxc_start", "LXCDriver.init_pid", "LXCDriver.status"],
  "corral.instance.live_keys": ["load_kernel_modules"],
  "corral.operations": ["Operation._execute", "Operation.finish", "Operation.wait"],
  "corral.instance.lifecycle": ["change_state", "do_state"],
  "corral.instance.backup_yaml": ["BackupYamlWriter._write"],
  "corral.project_restrictions": [],
  "corral.storage.drivers.base": ["cp_reflink", "StorageDriver._parent_dir", "StorageDriver.create_volume_from_copy", "StorageDriver._set_mode", "StorageDriver._delete", "StorageDriver.volume_path"],
  "corral.storage.drivers.dir": ["DirDriver._copy"],
  "corral.api.server": [],
  "corral.backup.yamlfile": ["write_file"],
}
def log(s):
    global OUT
    if OUT is None:
        OUT = open(os.environ.get("TRACE_OUT", "/tmp/corral-launch-trace.txt"), "a", buffering=1)
    OUT.write(f"{(time.perf_counter()-T0)*1000:10.1f} {threading.current_thread().name[:10]:10} db={DB['n']:<5} {s}\n")
def wrap(qual, fn):
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def w(*a, **k):
            d = depth.get(); tok = depth.set(d + 1); t = time.perf_counter(); n0 = DB["n"]
            try:
                return await fn(*a, **k)
            finally:
                depth.reset(tok)
                log(f"{'  '*d}{qual} {(time.perf_counter()-t)*1000:.1f} ms dbcalls={DB['n']-n0}")
        return w
    @functools.wraps(fn)
    def w(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            log(f"   [sync] {qual} {(time.perf_counter()-t)*1000:.1f} ms")
    return w
def patch(mod):
    for qual in TARGETS.get(mod.__name__, []):
        parts = qual.split(".")
        obj = mod
        for p in parts[:-1]:
            obj = getattr(obj, p)
        fn = getattr(obj, parts[-1], None)
        if fn is None: log(f"MISSING {mod.__name__}.{qual}"); continue
        if isinstance(obj.__dict__.get(parts[-1]) if isinstance(obj, type) else None, staticmethod): continue
        setattr(obj, parts[-1], wrap(qual, fn))
    if mod.__name__ == "corral.db":
        orig = mod.Tx._call
        async def _call(self, method, sql, params):
            DB["n"] += 1
            t = time.perf_counter()
            try:
                return await orig(self, method, sql, params)
            finally:
                if os.environ.get("TRACE_SQL"):
                    log(f"      SQL {(time.perf_counter()-t)*1000:.2f} ms {sql.strip()[:90]!r}")
        mod.Tx._call = _call
    if mod.__name__ == "corral.api.server":
        orig_mw = mod.envelope_middleware
        async def mw(request, handler):
            t = time.perf_counter(); n0 = DB["n"]
            log(f"REQ> {request.method} {request.path_qs}")
            try:
                return await orig_mw(request, handler)
            finally:
                log(f"REQ< {request.method} {request.path_qs} {(time.perf_counter()-t)*1000:.1f} ms dbcalls={DB['n']-n0}")
        mw.__middleware_version__ = 1
        mod.envelope_middleware = mw
class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in TARGETS and name not in ("corral.db",): return None
        sys.meta_path.remove(self)
        try: spec = importlib.util.find_spec(name)
        finally: sys.meta_path.insert(0, self)
        if spec is None: return None
        orig = spec.loader.exec_module
        def exec_module(module):
            orig(module); patch(module)
        spec.loader.exec_module = exec_module
        return spec
if os.environ.get("CORRAL_TRACE"):
    sys.meta_path.insert(0, Finder())
