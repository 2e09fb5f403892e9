# Oracle: drgn opens a dump with the debug vmlinux.  drgn -c DUMP -s VMLINUX drgn_check.py
from drgn.helpers.linux.printk import get_dmesg

print("release", prog["init_uts_ns"].name.release.string_().decode())
lines = get_dmesg(prog).decode(errors="replace").splitlines()
print("dmesg lines", len(lines))
for line in lines:
    if "CAPTURE-FIXTURE-MARKER" in line:
        print("marker", line[line.index("CAPTURE-FIXTURE-MARKER"):])
try:
    frames = [f.name for f in prog.crashed_thread().stack_trace() if f.name]
    print("crashed thread", " <- ".join(frames[:8]))
except Exception as e:  # old drgn on new kernels: report, the caller decides
    print("unwind failed:", e)
