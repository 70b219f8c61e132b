"""The explicit list of public columns, with the description of each (units and formats).

Only what is listed here reaches ``tissu-open.db``: private fields (publishers' contact
e-mails, raw payloads, HTTP validators) are excluded by construction.
"""

from __future__ import annotations

UTC_NOTE = "ISO 8601 en UTC (suffixe Z)"

PUBLIC_TABLES: dict[str, dict[str, object]] = {
    "events": {
        "description": (
            "Événements tels que publiés par leurs sources : une ligne par série (VEVENT "
            "RFC 5545 / schema.org Event), quelle que soit sa date. Les dates de chaque séance "
            "sont dans la table occurrences."
        ),
        "columns": {
            "id": "Identifiant stable « <source>--<UID de la source> »",
            "source_id": "Source d'où vient l'événement (table sources)",
            "source_uid": "Identifiant de l'événement chez la source (UID iCalendar, GUID RSS)",
            "uid_repaired": "1 si la source ne donnait pas d'UID et qu'il a été reconstruit",
            "title": "Titre (texte brut)",
            "description": "Description (texte brut, HTML retiré)",
            "all_day": "1 pour un événement à la journée (dates sans heure)",
            "dtstart_utc": f"Début, {UTC_NOTE} ; vide pour un événement à la journée",
            "dtend_utc": f"Fin, {UTC_NOTE} ; vide pour un événement à la journée",
            "dtstart_local": "Début à l'heure de Paris (ISO 8601 avec décalage) ou date",
            "start_date": "Premier jour (AAAA-MM-JJ) d'un événement à la journée",
            "end_date": "Jour suivant le dernier jour (exclusif, RFC 5545) d'un événement à la journée",
            "tzid": "Fuseau horaire IANA voulu par la source (ex. Europe/Paris)",
            "floating": "1 si la source ne donnait pas de fuseau : heure lue à l'heure de Paris",
            "rrule": "Règle de récurrence RFC 5545 (RRULE) de la série, le cas échéant",
            "status": "confirmed | tentative | cancelled",
            "sequence": "Numéro de révision SEQUENCE donné par la source",
            "location": "Lieu, tel qu'écrit par la source",
            "url": "Page web de l'événement",
            "organizer": "Nom de l'organisateur (jamais son adresse e-mail)",
            "organisation_id": "Organisation qui publie la source (table organisations)",
            "categories": "Catégories de la source (liste JSON)",
            "themes": "Thèmes Tissu (liste JSON de codes)",
            "quartier": "Quartier de Pantin, quand il est connu",
            "source_url": "Adresse du flux ou de la page d'où vient l'événement",
            "first_seen_at": f"Première collecte, {UTC_NOTE}",
            "updated_at": f"Dernière modification constatée, {UTC_NOTE}",
            "removed_at_source": f"Date où l'événement a disparu de sa source, {UTC_NOTE}",
            "revision": (
                "Révision Tissu : +1 à chaque changement constaté (contenu, disparition, retour) ; "
                "le SEQUENCE publié dans les calendriers vaut sequence + revision"
            ),
            "rdate": "Dates supplémentaires de la série (RDATE), liste JSON en UTC ou dates",
            "exdate": "Dates retirées de la série (EXDATE), liste JSON en UTC ou dates",
        },
    },
    "occurrences": {
        "description": (
            "Séances : chaque date d'un événement dans l'horizon de calcul (30 jours en arrière, "
            "365 jours en avant par défaut), récurrences RFC 5545 développées (RRULE, RDATE, "
            "EXDATE, RECURRENCE-ID)."
        ),
        "columns": {
            "id": "Identifiant stable « <id de l'événement>--<début d'origine> »",
            "event_id": "Événement (table events)",
            "recurrence_id": "Début d'origine de la séance (RECURRENCE-ID), en UTC ou date",
            "all_day": "1 pour une séance à la journée",
            "start_utc": f"Début, {UTC_NOTE} ; pour une journée entière, minuit heure de Paris",
            "end_utc": f"Fin, {UTC_NOTE}",
            "start_local": "Début à l'heure de Paris (ISO 8601 avec décalage), ou date",
            "end_local": "Fin à l'heure de Paris (ISO 8601 avec décalage), ou date (exclusive)",
            "start_date": "Jour de début (AAAA-MM-JJ) d'une séance à la journée",
            "end_date": "Jour suivant la fin (exclusif) d'une séance à la journée",
            "status": "confirmed | tentative | cancelled (séance annulée)",
            "title": "Titre de la séance (celui de l'événement sauf modification)",
            "location": "Lieu de la séance (celui de l'événement sauf modification)",
        },
    },
    "sources": {
        "description": "Sources collectées : qui publie quoi, où, sous quelle licence, et leur état.",
        "columns": {
            "id": "Identifiant court de la source",
            "name": "Nom de la source",
            "publisher_name": "Organisation qui publie",
            "publisher_type": "association | service-municipal | etablissement-public | autre",
            "publisher_website": "Site de l'organisation",
            "format": "Format lu (ical, rss, atom …)",
            "url": "Adresse du flux (ou fichier d'exemple fourni avec Tissu)",
            "licence": "Licence des données de la source",
            "themes": "Thèmes par défaut (liste JSON)",
            "quartier": "Quartier par défaut",
            "refresh": "Fréquence de collecte (ex. 6h)",
            "status": "active | paused",
            "last_attempt_at": f"Dernière tentative, {UTC_NOTE}",
            "last_success_at": f"Dernière collecte réussie, {UTC_NOTE}",
            "consecutive_failures": "Échecs consécutifs",
            "last_error": "Dernière erreur, en clair",
        },
    },
    "organisations": {
        "description": "Organisations qui publient ou organisent des événements.",
        "columns": {
            "id": "Identifiant court",
            "name": "Nom",
            "type": "association | service-municipal | etablissement-public | autre",
            "website": "Site web",
        },
    },
    "themes": {
        "description": (
            "Vocabulaire contrôlé des thèmes Tissu (data/vocab/themes.yaml), aligné sur les "
            "thématiques data.inclusion quand elles se recouvrent."
        ),
        "primary_key": "code",
        "columns": {
            "code": "Code du thème, tel qu'il figure dans events.themes",
            "fr": "Libellé en français",
            "en": "Libellé en anglais",
            "ar": "Libellé en arabe (traduction de travail)",
            "description": "Périmètre du thème",
            "datainclusion": "Thématiques data.inclusion v1 correspondantes (liste JSON)",
        },
    },
    "publish_runs": {
        "description": (
            "Historique des publications : une ligne par publication, avec les nombres "
            "d'événements nouveaux, modifiés, annulés et retirés depuis la précédente."
        ),
        "columns": {
            "id": "Numéro de la publication",
            "started_at": f"Début de la publication, {UTC_NOTE}",
            "finished_at": f"Fin de la publication, {UTC_NOTE}",
            "events": "Nombre d'événements (séries) publiés",
            "occurrences": "Nombre de séances publiées",
            "upcoming_occurrences": "Nombre de séances à venir au moment de la publication",
            "new": "Événements publiés pour la première fois",
            "updated": "Événements modifiés depuis la publication précédente",
            "cancelled": "Événements annulés depuis la publication précédente",
            "removed": "Événements disparus de leur source depuis la publication précédente",
            "snapshot": "Copie datée écrite (dossier snapshots/), vide si rien n'a changé",
        },
    },
    "changes": {
        "description": "Ce qui a changé d'une publication à l'autre, événement par événement.",
        "columns": {
            "id": "Numéro du changement",
            "run_id": "Publication (table publish_runs)",
            "changed_at": f"Date de la publication qui a constaté le changement, {UTC_NOTE}",
            "event_id": "Événement (table events)",
            "kind": "new (nouveau) | updated (modifié) | cancelled (annulé) | removed (retiré)",
            "title": "Titre de l'événement au moment du changement",
        },
    },
}
