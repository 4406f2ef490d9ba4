"""``/api/v1/reports``: the annual activity report, as JSON or a French CSV."""

from __future__ import annotations

from typing import Any

from flask import Response

from outreach.api.access import call_context, requires, settings
from outreach.api.blueprint import Blueprint
from outreach.api.reads import read_model
from outreach.extensions import db
from outreach.models import Role
from outreach.services import reports
from schemas.stats import ActivityReportSchema, ReportQuerySchema

blp = Blueprint(
    "reports", __name__, url_prefix="/api/v1/reports", description="Annual activity reports"
)

# Merged into the JSON 200 that ``blp.response`` documents (an int key, as it uses:
# a "200" string would stand beside it, without a description).
CSV_DOC = {
    "operationId": "get_activity_report",
    "responses": {
        200: {
            "content": {
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "description": "with format=csv: a semicolon-separated sheet, "
                        "one row per figure, its Clé column unique",
                    },
                    "example": "Rubrique;Indicateur;Code;Valeur;Secret statistique;Clé",
                }
            }
        }
    },
}


@blp.route("/activity", methods=["GET"])
@requires(Role.COORDINATOR, Role.AUDITOR, Role.ORG_ADMIN)
@blp.arguments(ReportQuerySchema, location="query")
@blp.response(200, ActivityReportSchema)
@blp.doc(**CSV_DOC)
def activity(args: dict[str, Any]) -> reports.ReportBody | Response:
    """A year's activity in the shape of the CAARUD standard report; ``format=csv`` for a sheet."""
    report = reports.activity_report(
        db.session,
        call_context(),
        settings(),
        read_model(),
        args["year"],
        args.get("organisation"),
        args["format"],
    )
    if args["format"] == "json":
        return report.body
    scope = report.body["organisation"] or "toutes-associations"
    return Response(
        reports.render_csv(report),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="activite-{args["year"]}-{scope}.csv"'
        },
    )
