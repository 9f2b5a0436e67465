"""The validation result: the checks table of a validated table, and what it decides.

:class:`ValidationResult` holds one row per check and column (:data:`CHECK_COLUMNS`, the
checks named in :data:`CHECKS`); it says whether the data passed, lists errors (schema
checks) and warnings (expectations), decides rejection under a rule (:data:`REJECT_ON`),
summarises itself in one sentence and serialises to JSON-able data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlnb.exceptions import SchemaDefinitionError, ValidationFailed

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.validation.schema import Schema


#: Names of the checks in :attr:`ValidationResult.checks`, in the order they are listed.
#: The ``expected_*`` checks are *expectations*: what a new batch of the same population
#: may exceed a little, reported as warnings. Every other check is the *schema*: what broken
#: data violates.
CHECKS = (
    "row_count",
    "unique_columns",
    "no_extra_columns",
    "unique_key",
    "column_present",
    "dtype",
    "nulls",
    "in_range",
    "categories",
    "unique",
    "freshness",
    "expected_nulls",
    "expected_range",
    "expected_categories",
    "expected_unique",
)
EXPECTATIONS = ("expected_nulls", "expected_range", "expected_categories", "expected_unique")

#: Columns of :attr:`ValidationResult.checks`; ``severity`` is ``error`` for schema checks
#: and ``warning`` for expectations.
CHECK_COLUMNS = ("check", "column", "severity", "passed", "n_failed", "detail", "examples")

#: What a failed check rejects (``reject_on`` of :meth:`ValidationResult.rejected`):
#: ``schema`` failures only, ``any`` failure (expectations too), or ``none``.
REJECT_ON = ("schema", "any", "none")


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of :func:`validate`.

    Attributes:
        passed: every schema check passed (expectations may have failed: see
            :attr:`warnings`).
        n_rows: rows in the validated table.
        checks: one row per check and column: ``check, column, severity, passed, n_failed,
            detail, examples`` (see :data:`CHECKS`); ``column`` is None for table-level
            checks, ``severity`` is ``error`` (schema) or ``warning`` (expectation).
        schema: the schema the data was checked against.
    """

    passed: bool
    n_rows: int
    checks: pd.DataFrame
    schema: Schema

    @property
    def failures(self) -> pd.DataFrame:
        """The failed checks, errors and warnings."""
        return self.checks[~self.checks["passed"]].reset_index(drop=True)

    @property
    def errors(self) -> pd.DataFrame:
        """The failed schema checks: broken data."""
        failed = self.checks[~self.checks["passed"]]
        return failed[failed["severity"] == "error"].reset_index(drop=True)

    @property
    def warnings(self) -> pd.DataFrame:
        """The failed expectations: data outside what is usual, not broken."""
        failed = self.checks[~self.checks["passed"]]
        return failed[failed["severity"] == "warning"].reset_index(drop=True)

    def rejected(self, reject_on: str = "schema") -> bool:
        """Whether the data is rejected under ``reject_on`` (one of :data:`REJECT_ON`)."""
        if reject_on not in REJECT_ON:
            raise SchemaDefinitionError(f"reject_on {reject_on!r} is not allowed; allowed: {', '.join(REJECT_ON)}")
        if reject_on == "none":
            return False
        return len(self.errors if reject_on == "schema" else self.failures) > 0

    def summary(self, reject_on: str = "schema") -> str:
        """One sentence: accepted (with how many warnings) or rejected, and by which checks."""
        n_checks = len(self.checks)
        rejected = self.rejected(reject_on)
        named = self.failures if rejected and reject_on == "any" else self.errors
        warned = self.warnings if not (rejected and reject_on == "any") else self.warnings.iloc[0:0]

        def names(table) -> str:
            return ", ".join(f"{c} {k}" if c is not None else k for k, c in zip(table["check"], table["column"]))

        if rejected:
            text = (f"data rejected: {len(named)} of {n_checks} checks failed on {self.n_rows:,} rows "
                    f"({names(named)})")
        elif len(self.failures) == 0:
            return f"data accepted: all {n_checks} checks passed on {self.n_rows:,} rows"
        elif len(self.errors):
            text = (f"data accepted (reject_on: {reject_on}) although {len(self.errors)} schema checks failed "
                    f"on {self.n_rows:,} rows ({names(self.errors)})")
        else:
            text = f"data accepted: the schema's checks passed on {self.n_rows:,} rows"
        if len(warned):
            text += f"; {len(warned)} {'warning' if len(warned) == 1 else 'warnings'} ({names(warned)})"
        return text

    def to_dict(self) -> dict:
        """JSON-able: passed, n_rows, counts, the checks as records, and the schema."""
        records = [
            {
                "check": r.check,
                "column": r.column,
                "severity": r.severity,
                "passed": bool(r.passed),
                "n_failed": int(r.n_failed),
                "detail": r.detail,
                "examples": r.examples,
            }
            for r in self.checks.itertuples(index=False)
        ]
        return {
            "passed": bool(self.passed),
            "n_rows": int(self.n_rows),
            "n_checks": len(records),
            "n_failed_checks": sum(not r["passed"] for r in records),
            "n_warnings": len(self.warnings),
            "checks": records,
            "schema": self.schema.to_dict(),
        }

    def raise_if_failed(self, reject_on: str = "schema") -> None:
        """Raise :class:`ValidationFailed` with :meth:`summary` when the data is rejected."""
        if self.rejected(reject_on):
            table = self.failures if reject_on == "any" else self.errors
            failed = list(zip(table["check"], table["column"]))
            raise ValidationFailed(self.summary(reject_on), failed=failed, n_checks=len(self.checks))


