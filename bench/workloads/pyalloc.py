"""Allocation-heavy Python workload for the real-program benchmark.

Run as `PYTHONMALLOC=malloc python3 pyalloc.py [SCALE]` so that every Python
object goes through the C allocator under test (by default CPython serves
small objects from its own pymalloc arenas). About 3 s under glibc at scale 1.

It does what allocation-heavy Python programs do: builds a large nested
structure of dicts, lists and strings, serialises it to JSON and parses it
back, builds and drops many short-lived containers, and keeps a moderate
working set alive across phases so the peak resident set means something.
Deterministic: a fixed seed, no I/O besides a one-line summary.
"""
import json
import random
import sys


def make_record(rng, i):
    return {
        "id": i,
        "name": "user-%06d" % i,
        "email": "user%d@example.org" % rng.randrange(10**6),
        "score": rng.random() * 100,
        "tags": [rng.choice(("red", "green", "blue", "cyan", "grey")) + str(rng.randrange(50))
                 for _ in range(rng.randrange(1, 8))],
        "history": [(rng.randrange(1000), "evt%d" % rng.randrange(100)) for _ in range(rng.randrange(0, 12))],
        "attrs": {("k%d" % j): "v" * rng.randrange(1, 40) for j in range(rng.randrange(1, 6))},
    }


def phase_structures(rng, n):
    """Build records, index them several ways, drop most of it."""
    records = [make_record(rng, i) for i in range(n)]
    by_tag = {}
    for r in records:
        for t in r["tags"]:
            by_tag.setdefault(t, []).append(r["id"])
    by_name = {r["name"]: r for r in records}
    top = sorted(records, key=lambda r: (-r["score"], r["name"]))[: n // 10]
    return records, by_tag, by_name, top


def phase_json(records, rounds):
    """Serialise and parse a big structure, keeping only a checksum."""
    total = 0
    for _ in range(rounds):
        text = json.dumps(records)
        back = json.loads(text)
        total += len(text) + len(back)
        del text, back
    return total


def phase_strings(rng, n):
    """Short-lived strings: build text, split, count, join, format."""
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(2, 12)))
             for _ in range(5000)]
    counts = {}
    out_len = 0
    for i in range(n):
        line = " ".join(rng.choice(words) for _ in range(20))
        for w in line.split():
            counts[w] = counts.get(w, 0) + 1
        out_len += len(line.upper().replace("a", "<a>"))
        if i % 1000 == 0:
            out_len += len(",".join("%s=%d" % kv for kv in sorted(counts.items())[:200]))
    return out_len, len(counts)


def phase_churn(rng, n):
    """Many small containers created and dropped, a sliding window kept alive."""
    window = []
    acc = 0
    for i in range(n):
        obj = {"i": i, "l": list(range(i % 17)), "t": (i, str(i)), "s": {i % 7, i % 11}}
        window.append(obj)
        if len(window) > 20000:
            k = rng.randrange(len(window))
            window[k], window[-1] = window[-1], window[k]
            acc += len(window.pop()["l"])
    return acc + len(window)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rng = random.Random(1)
    n = int(25000 * scale)
    records, by_tag, by_name, top = phase_structures(rng, n)
    j = phase_json(records, 1)
    del by_name
    s, distinct = phase_strings(rng, int(40000 * scale))
    c = phase_churn(rng, int(400000 * scale))
    records2, _, _, _ = phase_structures(rng, n // 2)
    j += phase_json(records2, 1)
    print(len(records), len(by_tag), len(top), j, s, distinct, c, len(records2))


if __name__ == "__main__":
    main()
