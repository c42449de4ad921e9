"""Rebuild the sample files of this folder (they are committed; run this only to change them).

    .venv/bin/python sample_data/make_samples.py

Each file carries the mess real exports carry; the expected outcome of every row is listed in
``sample_data/README.md`` and checked by ``tests/test_samples.py``.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import xlsxwriter

HERE = Path(__file__).resolve().parent

CLIENTS_FR = [
    ["Nom", "Prénom", "Téléphone", "E-mail", "Ville", "Étiquettes", "Désabonné"],
    [
        "Martin",
        "Jean",
        "06 12 34 56 78",
        "jean.martin@example.fr",
        "Lyon",
        "vip, newsletter",
        "non",
    ],
    ["Dubois", "Léa", "+33 (0)6 98 76 54 32", "lea.dubois@example.fr", "Paris", "client", ""],
    ["Moreau", "Théo", "0033 7 81 23 45 67", "", "Nantes", "", ""],
    ["Petit", "Chloé", "06.45.23.11.09", "chloe@exemple", "Lille", "", ""],
    ["Durand", "Hugo", "", "hugo@example.fr", "Nice", "", ""],
    ["Leroy", "Manon", "+33612345678", "manon@example.fr", "Lyon", "newsletter", ""],
    ["Garcia", "Inès", "01 23 45 67 89 poste 12", "", "Paris", "b2b", ""],
    ["Roux", "Louis", "12345", "", "", "", ""],
    ['=HYPERLINK("http://evil.example";"cliquez")', "Zoé", "06 11 22 33 44", "", "", "", ""],
    ["Fournier", "Jules", "6.45678912E+8", "", "Rennes", "", ""],
    ["Bernard", "Camille", "6,4E+08", "", "", "", ""],
    ["", "", "", "", "", "", ""],
    ["Simon", "Emma", "+44 7400 123456", "emma@example.co.uk", "Londres", "", ""],
    ["Lefèvre", "Gabriel", "06 20 30 40 50 / 01 45 67 89 01", "", "Bordeaux", "", "oui"],
    ["Michel", "Arthur", "+1 (201) 555-0123", "arthur@example.com", "New York", "", ""],
    ["Laurent", "Jade", "0612345", "", "", "", ""],
    ["", "", "06 33 44 55 66", "", "", "", ""],
    ["Vincent", "Noé", "06 77 88 99 00", "", "", "vip", "peut-être"],
    ["Thomas", "Louise", "'0645231109", "louise.thomas@example.fr", "Lille", "", ""],
]

LEADS = [
    ["Nom complet", "Numéro WhatsApp", "Pays", "Email", "Groupes", "Notes"],
    ["Awa Koné", "0707070707", "CI", "awa.kone@example.ci", "Clients VIP", "Salon 2026"],
    ["Koffi Agossou", 97123456, "BJ", "", "Prospects", ""],
    ["Aïcha Soglo", 2290196123456, "Bénin", "", "Prospects", ""],
    ["Yao Kouassi", "+225 07 08 09 10", "CI", "", "Clients VIP", "ancien numéro"],
    ["Mariam Traoré", "+225 27 22 44 55 66", "CI", "mariam@example.ci", "", ""],
    ["Moussa Diallo", "77 123 45 67", "SN", "", "Prospects", ""],
    ["Fatou Ndiaye", "+221 70 123 45 67", "", "", "", ""],
    ["Chinedu Okafor", "0802 123 4567", "NG", "", "Partenaires", ""],
    ["Rahul Sharma", "+91 81234 56789", "IN", "rahul@example.in", "", ""],
    ["Koffi Agossou", "+229 01 97 12 34 56", "BJ", "koffi@example.bj", "Clients VIP", ""],
    ["Inconnu", "+229 12 34 56 78", "BJ", "", "", ""],
    ["Nemo", "555 0100", "Atlantis", "", "", ""],
]


def write_clients_fr(path: Path) -> None:
    """cp1252, semicolons, French headers: what Excel FR saves as 'CSV (séparateur: ;)'."""
    with path.open("w", encoding="cp1252", newline="") as fh:
        w = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        w.writerows(CLIENTS_FR)


def write_leads_xlsx(path: Path) -> None:
    """Title rows above the header, numeric phone cells, a second sheet and a hidden one."""
    wb = xlsxwriter.Workbook(str(path))
    wb.set_properties({"created": dt.datetime(2026, 3, 14, 9, 0, 0)})
    ws = wb.add_worksheet("Leads")
    ws.write_string(0, 0, "Leads salon Abidjan — mars 2026")
    for r, row in enumerate(LEADS, start=2):
        for c, value in enumerate(row):
            if isinstance(value, int):
                ws.write_number(r, c, value)
            elif value:
                ws.write_string(r, c, value)
    notes = wb.add_worksheet("Notes")
    notes.write_string(0, 0, "Relancer les prospects avant fin mars.")
    archive = wb.add_worksheet("Archive")
    archive.write_row(0, 0, ["Nom", "Téléphone"])
    archive.write_row(1, 0, ["Ancien contact", "+33 6 00 00 00 00"])
    archive.hide()
    wb.close()


def write_google_csv(path: Path) -> None:
    """A Google Contacts export (UTF-8 with BOM, ' ::: ' multi-value cells)."""
    rows = [
        [
            "First Name",
            "Middle Name",
            "Last Name",
            "Labels",
            "E-mail 1 - Label",
            "E-mail 1 - Value",
            "Phone 1 - Label",
            "Phone 1 - Value",
            "Phone 2 - Label",
            "Phone 2 - Value",
            "Notes",
        ],
        [
            "Lucía",
            "",
            "García",
            "* myContacts ::: Clientes",
            "* Home",
            "lucia@example.es",
            "Mobile",
            "+34 612 34 56 78",
            "",
            "",
            "Madrid",
        ],
        [
            "Lukas",
            "",
            "Müller",
            "* myContacts",
            "",
            "",
            "Work",
            "+49 30 123456",
            "Mobile",
            "+49 1512 3456789 ::: +49 1512 3456780",
            "",
        ],
        ["Giulia", "", "Rossi", "* starred ::: Clientes", "", "", "Mobile", "", "", "", ""],
    ]
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


if __name__ == "__main__":
    write_clients_fr(HERE / "clients_fr.csv")
    write_leads_xlsx(HERE / "leads_afrique.xlsx")
    write_google_csv(HERE / "google_contacts.csv")
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("*.*")) if p.suffix != ".py"))
