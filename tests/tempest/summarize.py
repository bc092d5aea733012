"""Summarize a Tempest subunit v2 stream against a list of known failures.

Usage: summarize.py RESULTS.subunit KNOWN_FAILURES.txt [--prefix PREFIX] [--allow-empty] [--counts FILE]

Prints pass/fail/skip counts, the skip reasons, and every failing test with
its last rejected request and the end of its traceback. A failure is "known" when the test id (its
`[id-…]` attributes removed) equals an entry of the known-failures file, or
when an entry names its module or class. Each entry needs a `# reason`.
With `--prefix`, only tests whose id (or fixture class) starts with PREFIX
count, so one run's results can be judged per service.

Exit status: 0 when tests ran and every failure is known, 1 when a test
failed that is not listed or no test ran (unless `--allow-empty`), 2 when the
known-failures file is invalid.
"""

import argparse
import collections
import re
import sys

import subunit
import testtools

ATTRIBUTES = re.compile(r"\[[^\]]*\]$")
# Tempest reports a failed class fixture as `setUpClass (module.Class)`.
FIXTURE = re.compile(r"^(?:setUpClass|tearDownClass) \((?P<cls>[^)]+)\)$")
# Tempest's REST client logs every request as `Request (Class:test): 404 POST URL 0.007s`.
REQUEST_LOG = re.compile(r"Request \([^)]*\): (?P<status>\d{3}) (?P<method>[A-Z]+) (?P<url>\S+)")


def read_known_failures(path):
    """Return {test id or prefix: reason}, raising ValueError on an entry without a reason."""
    known = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            entry, _, reason = line.partition("#")
            entry, reason = entry.strip(), reason.strip()
            if not entry:
                continue
            if not reason:
                raise ValueError(f"{path}:{number}: entry '{entry}' has no '# reason' comment")
            known[entry] = reason
    return known


def normalize(test_id):
    """Return the test id without Tempest's `[id-…,smoke]` suffix, or the class of a fixture."""
    fixture = FIXTURE.match(test_id)
    if fixture:
        return fixture.group("cls")
    return ATTRIBUTES.sub("", test_id)


def known_reason(test_id, known):
    """Return the reason a test is expected to fail, or None."""
    name = normalize(test_id)
    for entry, reason in known.items():
        if name == entry or name.startswith(entry + "."):
            return reason
    return None


def read_results(path):
    """Return {test id: StreamToDict test record} from a subunit v2 file."""
    results = {}

    def store(test):
        results[test["id"]] = test

    with open(path, "rb") as stream:
        case = subunit.ByteStreamToStreamResult(stream, non_subunit_name="stdout")
        result = testtools.StreamToDict(store)
        result.startTestRun()
        case.run(result)
        result.stopTestRun()
    return results


def detail_text(test, name):
    """Return the text of one detail attachment of a test, or ''."""
    content = test["details"].get(name)
    if content is None:
        return ""
    return "".join(bytes(chunk).decode("utf-8", "replace") for chunk in content.iter_bytes())


def failure_line(test):
    """Return the exception of a failed test: the last two non-empty lines of its traceback.

    Tempest's REST client errors end with `tempest.lib.exceptions.X: message`
    followed by `Details: {response body}`.
    """
    lines = [line.strip() for line in detail_text(test, "traceback").splitlines() if line.strip()]
    if not lines:
        return "(no traceback recorded)"
    return " | ".join(lines[-2:])[:400]


def last_error_request(test):
    """Return `STATUS METHOD URL` of the test's last request that got a 4xx or 5xx, or ''."""
    last = ""
    for line in detail_text(test, "pythonlogging:''").splitlines():
        match = REQUEST_LOG.search(line)
        if match and int(match.group("status")) >= 400:
            last = f"{match.group('status')} {match.group('method')} {match.group('url')}"
    return last


def describe_failure(test):
    """Return the failure line, prefixed by the last rejected request when there is one."""
    request = last_error_request(test)
    prefix = f"[{request}] " if request else ""
    return prefix + failure_line(test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="subunit v2 file, for example from `stestr last --subunit`")
    parser.add_argument("known_failures", help="known-failures list, one test id per line with a # reason")
    parser.add_argument("--prefix", default="", help="only judge tests whose id starts with this, e.g. tempest.api.image.")
    parser.add_argument("--allow-empty", action="store_true", help="exit 0 when no test matches the prefix")
    parser.add_argument("--counts", help="also write 'passed new_failed skipped known_failed' to this file")
    args = parser.parse_args()

    try:
        known = read_known_failures(args.known_failures)
    except ValueError as error:
        print(f"tempest summary: {error}", file=sys.stderr)
        return 2

    results = {
        test_id: test
        for test_id, test in read_results(args.results).items()
        if normalize(test_id).startswith(args.prefix)
    }
    by_status = collections.defaultdict(list)
    for test_id, test in sorted(results.items()):
        by_status[test["status"]].append(test)

    passed = len(by_status["success"]) + len(by_status["xfail"])
    skipped = by_status["skip"]
    failed = by_status["fail"] + by_status["uxsuccess"]
    known_failed = [t for t in failed if known_reason(t["id"], known) is not None]
    new_failed = [t for t in failed if known_reason(t["id"], known) is None]
    known_passed = sorted(
        t["id"] for t in by_status["success"] if known_reason(t["id"], known) is not None
    )

    skip_reasons = collections.Counter(detail_text(t, "reason").strip() or "(no reason)" for t in skipped)
    if skip_reasons:
        print("Skipped tests by reason:")
        for reason, count in skip_reasons.most_common():
            print(f"  {count:4d}  {reason[:160]}")
    if known_failed:
        print(f"Known failures ({len(known_failed)}, listed in {args.known_failures}):")
        for test in known_failed:
            print(f"  {test['id']}\n      {describe_failure(test)}")
    if known_passed:
        print(f"Listed as known failures but passed ({len(known_passed)}); remove them from the list:")
        for test_id in known_passed:
            print(f"  {test_id}")
    if new_failed:
        print(f"NEW FAILURES ({len(new_failed)}, not in {args.known_failures}):")
        for test in new_failed:
            print(f"  {test['id']}\n      {describe_failure(test)}")

    label = f"Tempest {args.prefix.rstrip('.')}" if args.prefix else "Tempest"
    print(
        f"{label}: {passed} passed, {len(failed)} failed "
        f"({len(known_failed)} known, {len(new_failed)} new), {len(skipped)} skipped"
    )
    if args.counts:
        with open(args.counts, "w", encoding="utf-8") as counts:
            counts.write(f"{passed} {len(new_failed)} {len(skipped)} {len(known_failed)}\n")

    if not results and not args.allow_empty:
        selection = f" starting with {args.prefix}" if args.prefix else ""
        print(f"tempest summary: the results contain no tests{selection}; did Tempest start?", file=sys.stderr)
        return 1
    return 1 if new_failed else 0


if __name__ == "__main__":
    sys.exit(main())
