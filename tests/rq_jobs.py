"""Job functions for the rq test: the worker process imports them by module name."""


def add(a: int, b: int) -> int:
    return a + b


def shout(text: str) -> str:
    return text.upper()
