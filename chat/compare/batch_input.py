"""A batch's prompts, from a text box (one per line) or a column of an uploaded CSV file."""

from __future__ import annotations

import csv
import io

from chat.compare.targets import CompareError


def prompts_from_text(text: str) -> list[str]:
    """One prompt per non-blank line, stripped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _csv_text(data: bytes | str) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CompareError("The CSV file is not UTF-8 text; save it as UTF-8 and upload it again.") from None
    return data.removeprefix("\ufeff")


def csv_columns(data: bytes | str) -> list[str]:
    """The header row of a CSV file."""
    try:
        header = next(csv.reader(io.StringIO(_csv_text(data))), [])
    except csv.Error as exc:
        raise CompareError(f"The CSV file cannot be read: {exc}.") from None
    return [name.strip() for name in header]


def prompts_from_csv(data: bytes | str, column: str) -> list[str]:
    """The non-blank cells of ``column`` (named in the header row), in file order."""
    try:
        reader = csv.DictReader(io.StringIO(_csv_text(data)))
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        if column not in reader.fieldnames:
            raise CompareError(f"The CSV file has no column named {column!r}.")
        return [cell.strip() for row in reader if (cell := row.get(column) or "").strip()]
    except csv.Error as exc:
        raise CompareError(f"The CSV file cannot be read: {exc}.") from None

