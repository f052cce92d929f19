#!/usr/bin/env python3
"""Instructions per request (callgrind Ir, load-independent) of one pocketlog binary.

usage: python3 tools/scripts/ir_per_request.py BINARY PORT [N]   (needs valgrind)
Prepares a data dir natively (collection `docs` ~1 KB records with view rule
`@request.auth.id != ""`, `pubdocs` public), restarts the server under callgrind with
collection off, warms up, then collects N signed-in views and N guest views (random ids) and
prints Ir per request for each, plus the same with request logs off.
"""
import http.client, json, os, random, shutil, subprocess, sys, time, glob

binary, port = sys.argv[1], int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
work = f"/tmp/ir-{port}"
shutil.rmtree(work, ignore_errors=True); os.makedirs(work)
data = f"{work}/pb_data"

def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=120)

def call(c, method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token: headers["authorization"] = token
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse(); raw = r.read()
    return r.status, (json.loads(raw) if raw else None)

def wait_up():
    for _ in range(600):
        try:
            c = conn(); c.request("GET", "/api/health"); r = c.getresponse(); r.read()
            if r.status == 200: return
        except Exception: pass
        time.sleep(0.1)
    raise SystemExit("server did not start")

subprocess.run([binary, "superuser", "upsert", "a@b.c", "1234567890", "--dir", data], check=True, capture_output=True)
srv = subprocess.Popen([binary, "serve", "--http", f"127.0.0.1:{port}", "--dir", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_up(); c = conn()
_, b = call(c, "POST", "/api/collections/_superusers/auth-with-password", {"identity": "a@b.c", "password": "1234567890"})
admin = b["token"]
fields = [{"name": "title", "type": "text"}, {"name": "body", "type": "text", "max": 5000}]
rule = '@request.auth.id != ""'
call(c, "POST", "/api/collections", {"name": "docs", "type": "base", "listRule": rule, "viewRule": rule, "fields": fields}, admin)
call(c, "POST", "/api/collections", {"name": "pubdocs", "type": "base", "listRule": "", "viewRule": "", "fields": fields}, admin)
call(c, "POST", "/api/collections/users/records", {"email": "u@x.io", "password": "userpass123", "passwordConfirm": "userpass123"})
ids = {"docs": [], "pubdocs": []}
for col in ids:
    for i in range(500):
        s, r = call(c, "POST", f"/api/collections/{col}/records", {"title": f"t{i}", "body": ("lorem ipsum " * 80)[:900]}, admin)
        ids[col].append(r["id"])
srv.terminate(); srv.wait()

def measure(logs_on):
    out = f"{work}/cg.out"
    for f in glob.glob(out + "*"): os.remove(f)
    vg = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                           binary, "serve", "--http", f"127.0.0.1:{port}", "--dir", data],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up(); c = conn()
    _, b = call(c, "POST", "/api/collections/_superusers/auth-with-password", {"identity": "a@b.c", "password": "1234567890"})
    admin = b["token"]
    call(c, "PATCH", "/api/settings", {"logs": {"maxDays": 5 if logs_on else 0}}, admin)
    _, b = call(c, "POST", "/api/collections/users/auth-with-password", {"identity": "u@x.io", "password": "userpass123"})
    user = b["token"]
    rng = random.Random(7)
    results = {}
    for label, col, token in (("signed-in view", "docs", user), ("guest view", "pubdocs", None)):
        for _ in range(200):  # warm-up (caches, pools, lazily started threads)
            s, _ = call(c, "GET", f"/api/collections/{col}/records/{rng.choice(ids[col])}", token=token)
            assert s == 200, s
        time.sleep(0.5)
        subprocess.run(["callgrind_control", "-z", str(vg.pid)], capture_output=True)
        subprocess.run(["callgrind_control", "-i", "on", str(vg.pid)], capture_output=True)
        for _ in range(n):
            s, _ = call(c, "GET", f"/api/collections/{col}/records/{rng.choice(ids[col])}", token=token)
            assert s == 200, s
        time.sleep(0.6)  # let the request-log writer take its batch (it lingers 100 ms)
        subprocess.run(["callgrind_control", "-i", "off", str(vg.pid)], capture_output=True)
        before = set(glob.glob(out + ".*"))
        subprocess.run(["callgrind_control", "-d", str(vg.pid)], capture_output=True, text=True)
        total = 0
        for _ in range(600):  # the dump is written asynchronously
            fresh = [f for f in glob.glob(out + ".*") if f not in before]
            done = False
            for f in fresh:
                for line in open(f):
                    if line.startswith("totals:"):
                        total = int(line.split()[1]); done = True; break
            if done: break
            time.sleep(0.1)
        results[label] = total / n
    vg.terminate(); vg.wait()
    return results

for logs_on in (True, False):
    r = measure(logs_on)
    for label, ir in r.items():
        print(json.dumps({"binary": binary, "logs": "on" if logs_on else "off", "scenario": label, "ir_per_request": round(ir)}))
    sys.stdout.flush()
