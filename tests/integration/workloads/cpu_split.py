"""Spends CPU in alpha, beta and gamma in random slices, timing each call with its own thread
CPU clock; prints {"alpha": s, "beta": s, "gamma": s} at the end. Args: SECONDS [hold]: with
"hold", it waits for a line on stdin after "ready" (the test's tool is sampling by then)."""
import json, random, sys, time

def spin(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        x += 1
    return x

def alpha(s): return spin(s)
def beta(s): return spin(s)
def gamma(s): return spin(s)

def main():
    funcs = {"alpha": (alpha, 0.006), "beta": (beta, 0.002), "gamma": (gamma, 0.004)}
    spent = {name: 0.0 for name in funcs}
    print("ready", flush=True)
    if sys.argv[2:] == ["hold"]:
        sys.stdin.readline()
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        for name, (fn, mean) in funcs.items():
            t = time.thread_time()
            fn(random.uniform(0.2 * mean, 1.8 * mean))  # random lengths: no aliasing
            spent[name] += time.thread_time() - t
    print(json.dumps(spent), flush=True)

main()
