#!/usr/bin/python3
"""Boot a test image once under QEMU (TCG) and check the template.

  scripts/test-images/boot-check.py DIR/debian-mbr.img [--format raw|qcow2]

Boots with -snapshot (the image is not modified), waits for the ttyS0 login
prompt, logs in as root with the template password, checks hostname, sshd,
machine-id, root fs and the network, then powers off. Prints timings.
Standard library only. Always TCG: stock kernels hang under this host's KVM.
"""
import argparse
import os
import re
import select
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--format", default=None, help="raw or qcow2 (default: from name)")
    ap.add_argument("--password", default="template-pw")
    ap.add_argument("--hostname", default="template-host")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--smp", default="2")
    ap.add_argument("--log", default=None, help="write the serial transcript here")
    ap.add_argument("--run", action="append", default=[], help="extra shell command to run and print")
    args = ap.parse_args()
    fmt = args.format or ("qcow2" if args.image.endswith(".qcow2") else "raw")

    cmd = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", args.smp,
        "-nographic", "-snapshot",
        "-drive", f"file={args.image},format={fmt},if=virtio",
        "-nic", "user,model=virtio-net-pci",
        "-serial", "mon:stdio",
    ]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, bufsize=0)
    buf = bytearray()
    transcript = bytearray()

    def expect(pattern, timeout=None):
        deadline = time.monotonic() + (timeout or args.timeout)
        rx = re.compile(pattern.encode())
        while True:
            m = rx.search(buf)
            if m:
                out = bytes(buf[:m.end()])
                del buf[:m.end()]
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {pattern!r}")
            r, _, _ = select.select([p.stdout], [], [], min(left, 0.5))
            if r:
                data = os.read(p.stdout.fileno(), 65536)
                if not data:
                    raise EOFError(f"qemu exited waiting for {pattern!r}")
                buf.extend(data)
                transcript.extend(data)

    def send(s):
        p.stdin.write(s.encode())
        p.stdin.flush()

    results = {}
    ok = True
    try:
        expect(r"login: ")
        t_login = time.monotonic() - t0
        send("root\n")
        expect(r"Password: ", 30)
        send(args.password + "\n")
        expect(r"root@[^:]*:~# ", 60)
        t_shell = time.monotonic() - t0
        checks = {
            "hostname": "hostname",
            "ssh_enabled": "systemctl is-enabled ssh.service",
            "ssh_active": "systemctl is-active ssh.service",
            "getty_ttyS0": "systemctl is-active serial-getty@ttyS0.service",
            "machine_id": "cat /etc/machine-id",
            "root_fs": "findmnt -n -o SOURCE,FSTYPE /",
            "boot_fs": "findmnt -n -o SOURCE,FSTYPE /boot || echo none",
            "cmdline": "cat /proc/cmdline",
            "ipv4": "sleep 3; ip -4 -br addr show scope global",
            "failed_units": "systemctl --failed --no-legend --plain | awk '{print $1}' | xargs",
            "kernel": "uname -r",
        }
        for i, c in enumerate(args.run):
            checks[f"run{i}"] = c
        for key, c in checks.items():
            send(f"echo '<<{key}'; {c}; echo '{key}>>'\n")
            out = expect(rf"\n{key}>>", 60).decode(errors="replace")
            val = out.rsplit(f"<<{key}", 1)[-1]
            val = val[:val.rfind(f"{key}>>")].replace("\r", "").strip()
            results[key] = val
        send("poweroff\n")
        t_off0 = time.monotonic()
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            pass
        t_off = time.monotonic() - t_off0
    except Exception as e:  # report and fail
        print(f"FAIL: {e}", file=sys.stderr)
        print(transcript[-3000:].decode(errors="replace"), file=sys.stderr)
        ok = False
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if args.log:
            with open(args.log, "wb") as f:
                f.write(transcript)
    if not ok:
        return 1

    for k, v in results.items():
        print(f"{k}: {v}")
    print(f"login prompt: {t_login:.1f} s, shell: {t_shell:.1f} s, poweroff: {t_off:.1f} s")
    problems = []
    if results["hostname"] != args.hostname:
        problems.append("hostname")
    if results["ssh_enabled"] != "enabled" or results["ssh_active"] != "active":
        problems.append("sshd")
    if not re.fullmatch(r"[0-9a-f]{32}", results["machine_id"]):
        problems.append("machine-id")
    if "console=ttyS0,115200" not in results["cmdline"]:
        problems.append("cmdline")
    if results["failed_units"]:
        problems.append("failed units")
    if problems:
        print("PROBLEMS: " + ", ".join(problems))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
