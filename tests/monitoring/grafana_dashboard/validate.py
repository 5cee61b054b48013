"""The validate subcommand: every problem of the dashboard, from the SDK's model and this project's checks."""
import json
from pathlib import Path

from .contract import own_checks
from .files import flat_panels
from .sdk_model import load_sdk, sdk_checks


def validate(path):
    """Every problem of the dashboard at path, and notes on what could not be checked."""
    sdk = load_sdk()
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        return [f"decode: {path}: {exc}"], []
    if not isinstance(raw, dict):
        return [f"decode: {path} is not a JSON object"], []
    errors = []
    dash = sdk_checks(sdk, raw, errors)
    notes = own_checks(sdk, raw, dash, errors)
    return errors, notes


def cmd_validate(args):
    errors, notes = validate(args.dashboard)
    for note in notes:
        print(f"note: {note}")
    if errors:
        for error in errors:
            print(f"FAIL {error}")
        print(f"dashboard: {args.dashboard}: {len(errors)} problem(s)")
        return 1
    panels = [p for p in flat_panels(json.loads(Path(args.dashboard).read_text())) if p.get("type") != "row"]
    print(f"dashboard: {args.dashboard}: valid ({len(panels)} panels, "
          f"{sum(len(p.get('targets') or []) for p in panels)} queries)")
    return 0
