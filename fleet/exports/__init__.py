"""Exports of the office side (docs/exports.md): ESPPADOM DELIVERY for the funders, payroll and
billing CSV. Each one streams: an iterator of byte chunks over a server-side cursor, so memory
stays flat with the number of visits."""
