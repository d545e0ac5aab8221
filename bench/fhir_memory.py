"""A worker's memory under gunicorn with big FHIR answers (issue #13; the numbers in the README).

    .venv/bin/python bench/fhir_memory.py 30000000             # 30 MB answers with Content-Length
    NOLEN=1 .venv/bin/python bench/fhir_memory.py 30000000     # the same, close-delimited (read until refused)
    ROUNDS=6 .venv/bin/python bench/fhir_memory.py 4500000     # the largest answers one call may hold

A FHIR stub answers Observation and Condition searches with a Bundle of TSH results of about
the given size (others with an empty Bundle); one `rpl-cds serve` worker gets rounds of 8
concurrent patient-view calls without prefetch, and its VmRSS/VmHWM is printed after each.
All 8 calls may read at once (RPL_FHIR_MAX_CALLS_PER_SERVER and _PER_WORKER 8, a 60 s deadline). Extra
arguments are RPL_ settings, e.g. RPL_FHIR_MAX_WORKER_BYTES=40000000.
"""
import json, os, sys, tempfile, threading, time, subprocess
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import requests
from tests.builders import bundle, hook_request, tsh

SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000_000
one = tsh(2.0, date="2026-10-01")
n = SIZE // len(json.dumps({"resource": one}))
BIG = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": one}] * n}).encode()
SMALL = json.dumps(bundle()).encode()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        data = BIG if "/Observation" in self.path or "/Condition" in self.path else SMALL
        self.send_response(200); self.send_header("Content-Type", "application/fhir+json")
        if os.environ.get("NOLEN"):
            self.send_header("Connection", "close"); self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try: self.wfile.write(data)
        except OSError: pass
    def log_message(self, *a): pass

srv = ThreadingHTTPServer(("127.0.0.1", 0), H); srv.daemon_threads = True
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{srv.server_port}/fhir"
tmp = Path(tempfile.mkdtemp(prefix="rpl-cds-memory-"))
env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
env.update(RPL_AUTH_ENABLED="false", RPL_FHIR_SERVER_ALLOWLIST=base, RPL_DATABASE_URL=f"sqlite:///{tmp}/f.sqlite3",
           RPL_FHIR_CALL_DEADLINE_SECONDS="60", RPL_FHIR_MAX_CALLS_PER_SERVER="8", RPL_FHIR_MAX_CALLS_PER_WORKER="8", **dict(a.split("=",1) for a in sys.argv[2:]))

from tests.fhir_server import free_port
port = free_port()
master = subprocess.Popen([str(Path(sys.executable).parent / "rpl-cds"), "serve", "--port", str(port), "--workers", "1"],
                          env=env, stdout=open(tmp / "out", "wb"), stderr=open(tmp / "err", "wb"))
url = f"http://127.0.0.1:{port}"
for _ in range(300):
    try:
        if requests.get(url + "/healthz", timeout=1).ok: break
    except requests.RequestException: pass
    time.sleep(0.1)
def children(pid):
    found = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and open(f"/proc/{d}/stat").read().split(") ")[1].split()[1] == str(pid): found.append(int(d))
        except OSError: pass
    return found
worker = children(master.pid)[0]
def status():
    d = {}
    for line in open(f"/proc/{worker}/status"):
        if line.startswith(("VmRSS", "VmHWM")): k, v = line.split(":"); d[k] = int(v.split()[0]) // 1024
    return d
print("answer bytes", len(BIG), "start", status())
body = hook_request("patient-view", fhirServer=base); del body["prefetch"]
def call(_):
    return requests.post(url + "/cds-services/rpl-patient-view", json=body, timeout=120).status_code
for rnd in range(int(os.environ.get('ROUNDS', 3))):
    with ThreadPoolExecutor(8) as pool:
        print("round", rnd, sorted(pool.map(call, range(8))), status())
time.sleep(2)
print("after", status())
master.terminate(); master.wait()
