"""HMA 2.x's API on a started `bulwark serve` binary (the `server` fixture).

The full port of HMA's own API tests is crates/server/tests/server/hma_conformance.rs,
which runs the service in-process; this checks the same surface on the real
binary: an HMA client's path through curation, matching and health, with only
a Bearer header added. Standard library only (no HTTP package needed).
"""

import json
import urllib.error
import urllib.request

# A PDQ value no other test banks (sha256 of a phrase: 123 of 256 bits set),
# and the same with its last bit flipped (distance 1).
HASH = "4cb088a614ab30efd3dcd821a1519703ce2e86cc46d65653ea3bde1f4d201f64"
NEAR = HASH[:-1] + "5"
FAR = "b34f7759eb54cf102c2327de5eae68fc31d17933b929a9ac15c421e0b2dfe09b"  # HASH's complement


def call(server, method, path, body=None, key=None, auth=True):
    headers = {}
    if auth:
        headers["Authorization"] = f"Bearer {key or server.admin}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_hma_client_path_on_the_binary(server):
    assert call(server, "GET", "/status", auth=False) == (200, "I-AM-ALIVE")
    assert call(server, "GET", "/status/live", auth=False) == (200, "I-AM-ALIVE")

    st, body = call(server, "POST", "/c/banks", {"name": "PY_HMA_BANK"})
    assert st == 201, body
    assert json.loads(body) == {"name": "PY_HMA_BANK", "matching_enabled_ratio": 1.0}
    st, body = call(server, "POST", "/c/banks", {"name": "py_hma_bank"})
    assert st == 400 and "message" in json.loads(body), body

    st, body = call(server, "POST", "/c/bank/PY_HMA_BANK/signal", {"pdq": HASH, "note": "from py"})
    assert st == 200, body
    added = json.loads(body)
    assert added["signals"] == {"pdq": HASH}
    cid = added["id"]
    st, body = call(server, "GET", f"/c/bank/PY_HMA_BANK/content/{cid}?include_signals=true")
    assert st == 200, body
    got = json.loads(body)
    assert (got["id"], got["signals"], got["note"]) == (cid, {"pdq": HASH}, "from py")

    # Matching: HMA's per-bank map, distances as strings, {} on no match.
    st, body = call(server, "GET", f"/m/lookup?signal_type=pdq&signal={NEAR}")
    assert st == 200, body
    assert json.loads(body)["PY_HMA_BANK"] == [{"bank_content_id": cid, "distance": "1"}]
    assert call(server, "GET", f"/m/lookup?signal_type=pdq&signal={FAR}") == (200, "{}")
    st, body = call(server, "GET", f"/m/lookup?signal_type=pdq&signal={NEAR}&banks=NOT_A_BANK")
    assert (st, json.loads(body)) == (200, {})
    st, body = call(server, "GET", f"/m/raw_lookup?signal_type=pdq&signal={NEAR}&include_distance=true")
    assert st == 200, body
    assert {"bank_content_id": cid, "distance": "1"} in json.loads(body)["matches"]
    st, body = call(server, "POST", "/m/compare", {"pdq": [HASH, NEAR]})
    assert st == 200, body
    assert json.loads(body) == {"pdq": [True, {"distance": 1}]}

    # HMA's error body, and Bulwark's keys.
    st, body = call(server, "GET", "/c/bank/NO_SUCH_BANK")
    assert st == 404 and set(json.loads(body)) == {"message"}, body
    st, body = call(server, "GET", "/c/banks", auth=False)
    assert st == 401 and set(json.loads(body)) == {"message"}, body

    st, body = call(server, "DELETE", f"/c/bank/PY_HMA_BANK/content/{cid}")
    assert (st, json.loads(body)) == (200, {"deleted": 1})
    assert call(server, "GET", f"/m/lookup?signal_type=pdq&signal={NEAR}") == (200, "{}")
    st, body = call(server, "DELETE", "/c/bank/PY_HMA_BANK")
    assert st == 200, body
