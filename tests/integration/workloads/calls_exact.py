"""Deterministic calls for the call-tracing tests. Prints "ready", waits for a line on stdin,
makes the calls, prints "done", and waits for stdin to close.
  fib(15)            fib runs 1973 times (2 * fib(16) - 1)
  helper x N_HELPER  called from loop()
  gen(N_GEN)         a generator yielding N_GEN times: N_GEN + 1 activations
  boom x N_BOOM      raises every time (caught by its caller)"""
import sys

N_HELPER, N_GEN, N_BOOM = 1000, 50, 7


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def helper(i):
    return i * 2


def loop():
    for i in range(N_HELPER):
        helper(i)


def gen(n):
    for i in range(n):
        yield i


def consume():
    for _ in gen(N_GEN):
        pass


def boom():
    raise ValueError("boom")


def catch():
    for _ in range(N_BOOM):
        try:
            boom()
        except ValueError:
            pass


def main():
    fib(15)
    loop()
    consume()
    catch()


print("ready", flush=True)
sys.stdin.readline()
main()
print("done", flush=True)
sys.stdin.readline()
