#!/usr/bin/env python3
"""A 60 GiB file (issue 13: "a 60 GiB file must work"), end to end and nearly free of disk: the
fixture and the cache are sparse files on tmpfs (/dev/shm, where reading a hole allocates nothing),
and the cache already holds a resumable parallel download of it (the `.incomplete` file and its
`.segments` progress) that lacks only the last 195 MiB. `hfwarmd --once` against
`hfwarm-hubsim --cdn-max-request 64M` must fetch exactly those bytes in ranges of at most 64 MiB at
offsets above 50 GB, hash all 60 GiB, and publish the blob, its snapshot link and the ref, still
sparse.

The fixture is zeros but for three stretches of patterned bytes: 1 MiB across 2^32, 1 MiB across
50 GB (both already in the `.incomplete`, so a resume that misplaces or drops them fails the hash)
and the last 200 MiB (5 MiB of it already there). Hashing 60 GiB takes most of a minute, so the
test does not hash it: FIXTURE_SHA256 is given to the simulator (`lfs_sha256` in `.hubsim.json`),
and hfwarmd publishes the blob only if its own hash of the 60 GiB matches.

usage: huge_file_test.py HFWARMD HUBSIM_EXE HUBSIM_SOURCE_DIR
       huge_file_test.py --fixture-sha256   (prints the fixture's sha256; run it after changing the
                                             layout below and update FIXTURE_SHA256)
"""

import hashlib
import json
import os
import struct
import sys
import tempfile
import time

HUBSIM_DIR = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import check, equal, write_json, write_text  # noqa: E402
from hubsim_support import Simulator  # noqa: E402
from warm_support import Warm, describe, repo_folder  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
REPO = "test/huge"
FILE = "weights.bin"
SIZE = 60 * GIB
MAX_REQUEST = 64 * MIB  # the simulator's --cdn-max-request, the engine's largest range

# Piece boundaries of the saved progress: past 2^32, past 50 GB, and the missing tail. The piece
# [TAIL, LAST) was cut off at RESUME_AT, an odd offset; [LAST, SIZE) was never started.
PAST_4G = (1 << 32) + 4097
PAST_50G = 50_000_000_000 + 12_345
TAIL = SIZE - 200 * MIB
RESUME_AT = TAIL + 5 * MIB + 3
LAST = SIZE - 100 * MIB - 11
SEGMENTS = [[0, PAST_4G, PAST_4G], [PAST_4G, PAST_50G, PAST_50G], [PAST_50G, TAIL, TAIL],
            [TAIL, LAST, RESUME_AT], [LAST, SIZE, LAST]]

# The fixture's patterned stretches (offset, length); the rest of it is holes.
DATA = [((1 << 32) - 123_457, MIB), (50_000_000_000 - 65_537, MIB), (TAIL, SIZE - TAIL)]
# The sha256 of those 60 GiB (`--fixture-sha256`).
FIXTURE_SHA256 = "deac7d02c08c4244a501389163cc308e5bee2577a86becb2abd97d1b2ec89af4"

BLOCK = hashlib.shake_256(b"hfwarm huge file").digest(MIB)


def pattern(offset, length):
    """The fixture's bytes [offset, offset + length) of a patterned stretch: 1 MiB blocks of one
    random pattern, each stamped with its block number, so that a block in the wrong place shows."""
    first, last = offset // MIB, (offset + length - 1) // MIB
    blocks = b"".join(struct.pack("<Q", k) + BLOCK[8:] for k in range(first, last + 1))
    start = offset - first * MIB
    return blocks[start:start + length]


def fixture_sha256():
    """The sha256 of the fixture, fed from the layout (no file): about a minute."""
    hasher = hashlib.sha256()
    zeros = bytes(16 * MIB)
    at = 0
    for offset, length in DATA + [(SIZE, 0)]:
        while at < offset:
            n = min(len(zeros), offset - at)
            hasher.update(zeros[:n] if n < len(zeros) else zeros)
            at += n
        for chunk in range(offset, offset + length, 16 * MIB):
            hasher.update(pattern(chunk, min(16 * MIB, offset + length - chunk)))
        at = offset + length
    return hasher.hexdigest()


def write_sparse(path, stretches):
    """A sparse file of SIZE bytes holding the fixture's bytes of `stretches` (offset, length)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for offset, length in stretches:
            for chunk in range(offset, offset + length, 16 * MIB):
                f.seek(chunk)
                f.write(pattern(chunk, min(16 * MIB, offset + length - chunk)))


def scratch_dir():
    """tmpfs when it has room for the dense bytes (about 400 MiB): the hash then reads holes at
    memory speed; else the usual temp folder, where the same test takes longer."""
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= 2 * GIB and os.access("/dev/shm", os.W_OK):
            return "/dev/shm"
    except OSError:
        pass
    return None


def piece_bounds(header):
    """`bytes=A-B` -> (A, B + 1)."""
    first, last = header.split("=", 1)[1].split("-", 1)
    return int(first), int(last) + 1


def check_same_as_fixture(path):
    """The file's bytes are the fixture's: the patterned stretches match, and every other byte the
    file stores (SEEK_DATA) is zero."""
    with open(path, "rb") as f:
        for offset, length in DATA:
            f.seek(offset)
            for chunk in range(offset, offset + length, 16 * MIB):
                n = min(16 * MIB, offset + length - chunk)
                check(f.read(n) == pattern(chunk, n), f"{path}: bytes {chunk}-{chunk + n - 1} differ from the fixture")
        fd = f.fileno()
        at = 0
        while at < SIZE:
            try:
                start = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            cuts = sorted({start, end} | {b for o, n in DATA for b in (o, o + n) if start < b < end})
            for a, b in zip(cuts, cuts[1:]):
                if any(o <= a and b <= o + n for o, n in DATA):
                    continue
                for chunk in range(a, b, 16 * MIB):
                    n = min(16 * MIB, b - chunk)
                    f.seek(chunk)
                    check(f.read(n).count(0) == n, f"{path}: bytes {chunk}-{chunk + n - 1} are not zero")
            at = end


def test_huge_file_resume(hfwarmd, hubsim, tmp):
    started = time.monotonic()
    fixture = os.path.join(tmp, "fixtures", REPO, FILE)
    write_sparse(fixture, DATA)
    write_json(os.path.join(tmp, "fixtures", REPO, ".hubsim.json"), {"lfs_sha256": {FILE: FIXTURE_SHA256}})

    # The saved state of a parallel download stopped 195 MiB short of the end, where hfwarmd keeps it.
    cache = os.path.join(tmp, "cache")
    incomplete = os.path.join(cache, repo_folder(REPO), "blobs", FIXTURE_SHA256 + ".incomplete")
    write_sparse(incomplete, DATA[:2] + [(TAIL, RESUME_AT - TAIL)])
    segments = os.path.join(cache, ".locks", repo_folder(REPO), FIXTURE_SHA256 + ".segments")
    write_json(segments, {"size": SIZE, "segments": SEGMENTS})
    missing = SIZE - RESUME_AT

    warm = Warm(hfwarmd, tmp)
    manifest = write_text(os.path.join(tmp, "manifest.txt"), f"{REPO}\n")
    with Simulator(hubsim, os.path.join(tmp, "fixtures"), "--cdn-max-request", "64M",
                   workdir=tempfile.mkdtemp(prefix="sim-", dir=tmp)) as sim:
        info = sim.get(f"/api/models/{REPO}/revision/main?blobs=true")
        equal(info.status, 200, "listing status")
        commit = info.json()["sha"]
        equal([(s["rfilename"], s["size"], s["lfs"]["sha256"]) for s in info.json()["siblings"]],
              [(FILE, SIZE, FIXTURE_SHA256)], "the simulator's listing of the fixture")
        ready = time.monotonic()
        # One attempt: after a hash mismatch hfwarmd would start over and preallocate all 60 GiB.
        config = warm.config({"retry": {"max_attempts": 1}})
        result = warm.run(sim, manifest, cache, "--config", config, timeout=600)
        ran = time.monotonic() - ready
        equal(result.returncode, 0, "exit code of the resumed 60 GiB download\n" + describe(result))
        log = sim.log()

    # Only the missing bytes came, in ranges of at most 64 MiB far past 50 GB, each answered with
    # its own Content-Range.
    cdn = [line for line in log if line["listener"] == "cdn"]
    check(cdn and all(line["method"] == "GET" and line["status"] == 206 for line in cdn),
          f"CDN answers (all must be 206): {[(line['method'], line['status'], line['range']) for line in cdn]}")
    pieces = sorted(piece_bounds(line["range"]) for line in cdn)
    check(all(b - a <= MAX_REQUEST for a, b in pieces), f"a request asked for more than 64 MiB: {pieces}")
    back_to_back = all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    check(pieces[0][0] == RESUME_AT and pieces[-1][1] == SIZE and back_to_back,
          f"the ranges do not cover the missing bytes [{RESUME_AT}, {SIZE}) once: {pieces}")
    for line in cdn:
        a, b = piece_bounds(line["range"])
        equal(line["content_range"], f"bytes {a}-{b - 1}/{SIZE}", f"Content-Range of the answer to {line['range']}")
        equal(line["bytes"], b - a, f"body bytes of the answer to {line['range']}")
    equal(sum(line["bytes"] for line in cdn), missing, "CDN bytes sent")
    check(all(line["status"] == 302 for line in log if line["class"] == "resolvers"),
          f"resolver answers: {[(line['status'], line['range']) for line in log if line['class'] == 'resolvers']}")

    # The blob, its snapshot link and the ref; nothing of the partial download is left.
    folder = os.path.join(cache, repo_folder(REPO))
    blob = os.path.join(folder, "blobs", FIXTURE_SHA256)
    equal(sorted(os.listdir(os.path.join(folder, "blobs"))), [FIXTURE_SHA256], "names in blobs/")
    check(not os.path.exists(segments), f"{segments} is left after the download")
    link = os.path.join(folder, "snapshots", commit, FILE)
    equal(os.readlink(link), "../../blobs/" + FIXTURE_SHA256, f"symlink snapshots/{commit}/{FILE}")
    with open(os.path.join(folder, "refs", "main")) as f:
        equal(f.read(), commit, "refs/main")
    st = os.stat(blob)
    equal(st.st_size, SIZE, "blob size")
    dense = sum(length for _, length in DATA)
    check(st.st_blocks * 512 <= dense + 64 * MIB,
          f"the blob stores {st.st_blocks * 512} bytes, the fixture only {dense}: something wrote the holes")
    check_same_as_fixture(blob)
    print(f"hfwarmd --once: {ran:.1f} s for {missing} missing bytes and the hash of {SIZE}; "
          f"{len(cdn)} CDN ranges; test {time.monotonic() - started:.1f} s")


def main():
    if sys.argv[1:] == ["--fixture-sha256"]:
        print(fixture_sha256())
        return 0
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hfwarm-huge-", dir=scratch_dir()) as tmp:
        test_huge_file_resume(sys.argv[1], sys.argv[2], tmp)
    print("ok huge_file_resume")
    return 0


if __name__ == "__main__":
    sys.exit(main())
