#!/usr/bin/python3
"""A minimal CRI v1 client for the interop tests (no crictl in Debian).

cri_subset.proto (beside this file) is compiled with protoc into --work at first use; calls go
through grpcio's generic unary channel, so no grpc code generator is needed. Needs Debian's
python3-grpcio, python3-protobuf and protobuf-compiler.

  cri_client.py --socket S --work DIR call RPC [REQUEST_JSON]   prints the reply as JSON
  cri_client.py --socket S --work DIR wait-ready SECONDS        until RuntimeReady and NetworkReady
  cri_client.py image --out FILE --name REF --busybox PATH --cmd JSON [--index TEXT]
                                                                writes a one-layer OCI image archive
"""
import argparse
import gzip
import hashlib
import importlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_messages(work):
    """Compiles the proto subset (once per work directory) and imports the generated module."""
    module_dir = os.path.join(work, "cri_pb")
    if not os.path.exists(os.path.join(module_dir, "cri_subset_pb2.py")):
        os.makedirs(module_dir, exist_ok=True)
        subprocess.run(
            ["protoc", "--proto_path=" + HERE, "--python_out=" + module_dir, "cri_subset.proto"], check=True)
    sys.path.insert(0, module_dir)
    return importlib.import_module("cri_subset_pb2")


def call(socket, work, rpc, request_json, timeout=120):
    import grpc
    from google.protobuf import json_format

    pb = load_messages(work)
    request = getattr(pb, rpc + "Request")()
    json_format.ParseDict(json.loads(request_json or "{}"), request)
    reply_type = getattr(pb, rpc + "Response")
    with grpc.insecure_channel("unix://" + socket) as channel:
        method = channel.unary_unary(
            "/runtime.v1.RuntimeService/" + rpc,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=reply_type.FromString)
        reply = method(request, timeout=timeout)
    return json_format.MessageToDict(reply, preserving_proto_field_name=True)


def wait_ready(socket, work, seconds):
    """Polls Status until the runtime and its CNI network report ready; exits 1 with the last status."""
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            last = call(socket, work, "Status", "{}", timeout=5)
            conditions = {c.get("type"): c.get("status", False) for c in last.get("status", {}).get("conditions", [])}
            if conditions.get("RuntimeReady") and conditions.get("NetworkReady"):
                print(json.dumps(last))
                return 0
        except Exception as error:  # the socket may not exist yet
            last = str(error)
        time.sleep(0.2)
    print(json.dumps({"not_ready": last}))
    return 1


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(entries):
    """A tar archive of (name, TarInfo-setup, data-or-None) entries, deterministic."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def image(out_path, ref, busybox, cmd, index):
    """Writes an OCI image layout archive that `ctr images import` accepts: one layer holding a
    static busybox with a few applet links and /www/index.html (the sandbox's root is read-only,
    so the page ships in the image), a config whose Cmd is `cmd`, named `ref`."""
    with open(busybox, "rb") as f:
        busybox_bytes = f.read()
    entries = []
    for directory in ["bin", "dev", "etc", "proc", "sys", "tmp", "www"]:
        info = tarfile.TarInfo(directory)
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777 if directory == "tmp" else 0o755
        entries.append((info, None))
    page = index.encode()
    info = tarfile.TarInfo("www/index.html")
    info.mode = 0o644
    info.size = len(page)
    entries.append((info, page))
    info = tarfile.TarInfo("bin/busybox")
    info.mode = 0o755
    info.size = len(busybox_bytes)
    entries.append((info, busybox_bytes))
    for applet in ["sh", "sleep", "nc", "httpd", "ip", "cat", "echo", "hostname"]:
        info = tarfile.TarInfo("bin/" + applet)
        info.type = tarfile.SYMTYPE
        info.linkname = "busybox"
        entries.append((info, None))
    layer = tar_bytes(entries)
    layer_gz = gzip.compress(layer, mtime=0)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [blob(layer)]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(layer_gz),
                    "size": len(layer_gz)}],
    }).encode()
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest),
            "size": len(manifest), "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref.split(":")[-1]},
        }],
    }).encode()
    files = [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()), ("index.json", index)]
    for data in [layer_gz, config, manifest]:
        files.append(("blobs/sha256/" + blob(data).split(":")[1], data))
    archive_entries = []
    for directory in ["blobs", "blobs/sha256"]:
        info = tarfile.TarInfo(directory)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        archive_entries.append((info, None))
    for name, data in files:
        info = tarfile.TarInfo(name)
        info.mode = 0o644
        info.size = len(data)
        archive_entries.append((info, data))
    with open(out_path, "wb") as f:
        f.write(tar_bytes(archive_entries))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket")
    parser.add_argument("--work")
    sub = parser.add_subparsers(dest="command", required=True)
    call_parser = sub.add_parser("call")
    call_parser.add_argument("rpc")
    call_parser.add_argument("request", nargs="?", default="{}")
    ready_parser = sub.add_parser("wait-ready")
    ready_parser.add_argument("seconds", type=float)
    image_parser = sub.add_parser("image")
    image_parser.add_argument("--out", required=True)
    image_parser.add_argument("--name", required=True)
    image_parser.add_argument("--busybox", required=True)
    image_parser.add_argument("--cmd", required=True)
    image_parser.add_argument("--index", default="")
    args = parser.parse_args()
    if args.command == "image":
        image(args.out, args.name, args.busybox, json.loads(args.cmd), args.index)
        return 0
    if args.command == "wait-ready":
        return wait_ready(args.socket, args.work, args.seconds)
    try:
        print(json.dumps(call(args.socket, args.work, args.rpc, args.request)))
    except Exception as error:
        code = getattr(error, "code", None)
        details = getattr(error, "details", None)
        print(json.dumps({"error": str(code() if callable(code) else error),
                          "details": details() if callable(details) else ""}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
