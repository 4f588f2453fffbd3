#!/usr/bin/env python3
"""Runs the Dockerfile's instructions on the host, since no container engine runs here.

Each stage gets a root file system of its own: the host's Debian (the base images are Debian
bookworm) as read-only lower layers of overlay mounts, so that RUN, COPY and useradd write only
to the stage. The build stage (FROM a swift image) sees the toolchain at /opt/swift; the runtime
stage does not, so the binary has to run without it, which is what --static-swift-stdlib
promises. COPY takes the build context (this checkout) or an earlier stage's files. The image's
ENTRYPOINT and CMD then run as its USER with its ENV and WORKDIR, in a network namespace of their
own (a container's loopback), until its HEALTHCHECK command succeeds; STOPSIGNAL must then stop
it with status 0.

Usage (root, inside a private mount namespace; scripts/check-image.sh sets this up):
    check-image.py DOCKERFILE CONTEXT WORKDIR
The build stage's files stay in WORKDIR/build, so a second run builds incrementally.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

dockerfile, context, work = sys.argv[1:4]
HOST_LAYERS = ["usr", "etc", "var"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(command, **kwargs):
    print("+", " ".join(command) if isinstance(command, list) else command, flush=True)
    subprocess.run(command, check=True, **kwargs)


def instructions(path):
    text = open(path).read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            yield keyword.upper(), rest.strip()


class Stage:
    def __init__(self, name, image, index):
        self.name, self.image = name, image
        self.root = os.path.join(work, name or f"stage{index}")
        self.workdir, self.user = "/", "0:0"
        self.env = {"PATH": DEFAULT_PATH, "HOME": "/root"}
        self.swift = "swift" in image
        if self.swift:
            self.env["PATH"] = "/opt/swift/usr/bin:" + DEFAULT_PATH
        self.mount()

    def mount(self):
        layers = os.path.join(work, "layers", os.path.basename(self.root))
        shutil.rmtree(layers, ignore_errors=True)
        os.makedirs(self.root, exist_ok=True)
        for directory in HOST_LAYERS:
            upper, scratch = os.path.join(layers, directory, "upper"), os.path.join(layers, directory, "work")
            os.makedirs(upper)
            os.makedirs(scratch)
            target = os.path.join(self.root, directory)
            os.makedirs(target, exist_ok=True)
            run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir=/{directory},upperdir={upper},workdir={scratch}", target])
        for link, to in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")]:
            path = os.path.join(self.root, link)
            if not os.path.lexists(path):
                os.symlink(to, path)
        for directory in ["dev", "proc", "sys", "tmp", "root", "opt", "run"]:
            os.makedirs(os.path.join(self.root, directory), exist_ok=True)
        run(["mount", "--rbind", "/dev", os.path.join(self.root, "dev")])
        run(["mount", "-t", "proc", "proc", os.path.join(self.root, "proc")])
        run(["mount", "--rbind", "-o", "ro", "/sys", os.path.join(self.root, "sys")])
        run(["mount", "-t", "tmpfs", "tmpfs", os.path.join(self.root, "tmp")])
        if self.swift:
            # The swift image's toolchain, and SwiftPM's caches and settings of the build user.
            # /opt: the toolchain (/opt/swift) and this machine's copies of the Swift packages.
            run(["mount", "--rbind", "-o", "ro", "/opt", os.path.join(self.root, "opt")])
            run(["mount", "--bind", "/root", os.path.join(self.root, "root")])
        # Name resolution as the host has it, for apt-get and swift package resolve.
        shutil.copy("/etc/resolv.conf", os.path.join(self.root, "etc/resolv.conf"))

    def path(self, inside):
        return os.path.join(self.root, inside.lstrip("/"))

    def absolute(self, inside):
        return inside if inside.startswith("/") else os.path.join(self.workdir, inside)

    def environment(self):
        environment = dict(self.env)
        if self.user.split(":")[0] not in ("0", "root") and environment.get("HOME") == "/root":
            environment["HOME"] = "/"
        return environment

    def execute(self, command, network=True, background=False):
        inner = ["chroot", f"--userspec={self.user}", self.root, "/usr/bin/env", "-i"]
        inner += [f"{key}={value}" for key, value in self.environment().items()]
        # In the background, the command replaces the shell: the stop signal reaches it.
        inner += ["/bin/sh", "-c", f"cd {shlex.quote(self.workdir)} && {'exec ' if background else ''}{command}"]
        if not network:
            inner = ["unshare", "--net", "sh", "-c", "ip link set lo up && exec \"$@\"", "container"] + inner
        print("+", command, flush=True)
        if background:
            return subprocess.Popen(inner)
        subprocess.run(inner, check=True)


def copy(sources, destination):
    for source in sources:
        if os.path.isdir(source):
            # A directory's contents, replacing what an earlier run left (times are kept, so the
            # build stage's incremental build sees only real changes).
            if not destination.endswith("/"):
                shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
        else:
            target = os.path.join(destination, os.path.basename(source)) if destination.endswith("/") else destination
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target)


def json_or_shell(text):
    return json.loads(text) if text.startswith("[") else ["/bin/sh", "-c", text]


arguments, stages = {}, []
healthcheck = entrypoint = cmd = None
stop_signal = "SIGTERM"
for keyword, rest in instructions(dockerfile):
    rest = re.sub(r"\$\{(\w+)\}", lambda match: arguments.get(match.group(1), ""), rest)
    if keyword == "ARG":
        name, _, default = rest.partition("=")
        arguments[name] = default
    elif keyword == "FROM":
        words = rest.split()
        stages.append(Stage(words[2] if len(words) > 2 and words[1].upper() == "AS" else None, words[0], len(stages)))
    elif keyword == "WORKDIR":
        stage = stages[-1]
        stage.workdir = stage.absolute(rest)
        os.makedirs(stage.path(stage.workdir), exist_ok=True)
    elif keyword == "COPY":
        stage, words = stages[-1], rest.split()
        origin = None
        if words[0].startswith("--from="):
            origin = next(s for s in stages if s.name == words[0].split("=", 1)[1])
            words = words[1:]
        *sources, destination = words
        sources = [origin.path(origin.absolute(s)) if origin else os.path.join(context, s) for s in sources]
        copy(sources, stage.path(stage.absolute(destination)) + ("/" if destination.endswith("/") or destination == "./" else ""))
    elif keyword == "RUN":
        stages[-1].execute(rest)
    elif keyword == "USER":
        stages[-1].user = rest
    elif keyword == "ENV":
        for pair in shlex.split(rest):
            key, _, value = pair.partition("=")
            stages[-1].env[key] = value
    elif keyword == "HEALTHCHECK":
        healthcheck = json_or_shell(rest.split("CMD", 1)[1].strip())
    elif keyword == "ENTRYPOINT":
        entrypoint = json_or_shell(rest)
    elif keyword == "CMD":
        cmd = json_or_shell(rest)
    elif keyword == "STOPSIGNAL":
        stop_signal = rest
    elif keyword not in ("EXPOSE", "LABEL"):
        sys.exit(f"check-image.py does not know the instruction {keyword}")

image = stages[-1]
if os.path.exists(image.path("/opt/swift")) and os.listdir(image.path("/opt")):
    sys.exit("the runtime stage has the Swift toolchain")
# The container: entry point and command as the image's user, then its health check beside it.
container = image.execute(" ".join(shlex.quote(part) for part in entrypoint + (cmd or [])), network=False, background=True)
try:
    # The health check runs in the container's network namespace: enter it through the process.
    deadline = time.monotonic() + 120
    while True:
        probe = subprocess.run(
            ["nsenter", f"--net=/proc/{container.pid}/ns/net", "chroot", f"--userspec={image.user}", image.root, "/usr/bin/env", "-i",
             *[f"{k}={v}" for k, v in image.environment().items()], *healthcheck],
            capture_output=True, text=True,
        )
        if probe.returncode == 0:
            print("HEALTHCHECK passed:", probe.stdout.strip()[:200], flush=True)
            break
        if container.poll() is not None:
            sys.exit(f"the container exited with status {container.returncode} before its health check passed")
        if time.monotonic() > deadline:
            sys.exit(f"HEALTHCHECK never passed: {probe.stdout}{probe.stderr}")
        time.sleep(1)
finally:
    if container.poll() is None:
        os.kill(container.pid, getattr(__import__("signal"), stop_signal))
status = container.wait(timeout=60)
if status != 0:
    sys.exit(f"{stop_signal} stopped the container with status {status}")
print("the Dockerfile's commands ran on the host, the image's binary served and stopped cleanly")
