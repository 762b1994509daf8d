"""Generate a large C file for the gcc real-program benchmark.

    python3 gen_c.py [FUNCTIONS] > big.c

Deterministic (fixed seed). The code is ordinary C of the kind that keeps an
optimising compiler busy: structs, loops over arrays, switch statements,
arithmetic chains and calls between functions, which gives GCC's middle end
many basic blocks, SSA names and inlining candidates, and so many small
allocations. `gcc -O2 -c` of the default size takes 1-3 s on this machine.
"""
import random
import sys


def expr(rng, names, depth=0):
    if depth > 2 or rng.random() < 0.3:
        return rng.choice(names) if rng.random() < 0.7 else str(rng.randrange(1, 100))
    op = rng.choice(["+", "-", "*", "^", "|", "&", "<<", ">>"])
    if op in ("<<", ">>"):
        return "(%s %s %d)" % (expr(rng, names, depth + 1), op, rng.randrange(1, 7))
    return "(%s %s %s)" % (expr(rng, names, depth + 1), op, expr(rng, names, depth + 1))


def function(rng, i, out):
    n_locals = rng.randrange(4, 10)
    names = ["a", "b", "n"] + ["v%d" % k for k in range(n_locals)]
    out.append("static int f%d(struct rec *r, int a, int b, int n) {" % i)
    for k in range(n_locals):
        out.append("  int v%d = %s;" % (k, expr(rng, names[: 3 + k])))
    for _ in range(rng.randrange(3, 8)):
        kind = rng.randrange(4)
        target = "v%d" % rng.randrange(n_locals)
        if kind == 0:
            out.append("  for (int i = 0; i < n; ++i) {")
            out.append("    r->data[i & 63] += %s;" % expr(rng, names))
            out.append("    %s ^= r->data[(i * %d) & 63];" % (target, rng.randrange(1, 9)))
            out.append("  }")
        elif kind == 1:
            out.append("  switch (%s & 7) {" % expr(rng, names))
            for c in range(rng.randrange(3, 8)):
                out.append("  case %d: %s += %s; break;" % (c, target, expr(rng, names)))
            out.append("  default: %s -= %s;" % (target, expr(rng, names)))
            out.append("  }")
        elif kind == 2:
            out.append("  if (%s > %s) %s = %s; else %s = %s;" % (
                expr(rng, names), expr(rng, names), target, expr(rng, names), target, expr(rng, names)))
        elif i > 0:
            out.append("  %s += f%d(r, %s, %s, n - 1);" % (target, rng.randrange(i), expr(rng, names), expr(rng, names)))
    out.append("  r->sum += %s;" % " + ".join("v%d" % k for k in range(n_locals)))
    out.append("  return %s;" % expr(rng, names))
    out.append("}")


def main():
    functions = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    rng = random.Random(1)
    out = ["struct rec { int data[64]; long sum; };"]
    for i in range(functions):
        function(rng, i, out)
    out.append("int entry(struct rec *r, int n) {")
    out.append("  int s = 0;")
    for i in range(0, functions, max(1, functions // 200)):
        out.append("  s += f%d(r, s, %d, n);" % (i, i))
    out.append("  return s;")
    out.append("}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
