"""Hold the writer lease of an index in Milvus until stdin ends (tests/test_milvus_crashes.py).

    python -m tests.milvus_lease_holder URI COLLECTION

It prints "holding" once the lease is its own.
"""

from __future__ import annotations

import sys


def main() -> None:
    from qa.store.backends import MilvusAddress
    from qa.store.milvus import MilvusIndex
    from qa.store.milvus.lease import WriterLease

    uri, collection = sys.argv[1:3]
    index = MilvusIndex(MilvusAddress(uri, collection, None, 3.0))
    lease = WriterLease(index.milvus, index.names)
    lease.acquire()
    print("holding", flush=True)
    sys.stdin.read()
    lease.release()


if __name__ == "__main__":
    main()
