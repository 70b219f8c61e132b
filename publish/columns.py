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
            "address": "Adresse du lieu, quand la source la donne à part (OpenAgenda)",
            "postal_code": "Code postal du lieu",
            "city": "Commune du lieu",
            "latitude": "Latitude du lieu (WGS 84, degrés décimaux)",
            "longitude": "Longitude du lieu (WGS 84, degrés décimaux)",
            "registration_url": "Page d'inscription ou de réservation",
            "accessibility": (
                "Accessibilité annoncée par la source (liste JSON : hearing (auditif), visual "
                "(visuel), motor (moteur), intellectual (mental), psychic (psychique))"
            ),
            "age_min": "Âge minimal du public, en années",
            "age_max": "Âge maximal du public, en années",
            "attendance_mode": "offline (sur place) | online (en ligne) | mixed (les deux)",
            "publics": (
                "Publics visés, lus dans le texte (liste JSON de codes data.inclusion « publics » "
                "et « enfants », data/vocab/publics.yaml)"
            ),
            "gratuit": "1 gratuit, 0 payant, vide si le texte ne le dit pas",
            "price": "Prix tel qu'écrit (ex. « 6 € », « De 6,00 € à 12,00 € », « prix libre »)",
            "registration_required": "1 inscription ou réservation nécessaire, 0 sans, vide inconnu",
            "registration_phone": "Numéro public pour s'inscrire, lu dans le texte de l'événement",
            "language": "Langue de l'événement (code ISO 639-1) : mention explicite ou détection",
            "place_id": "Lieu connu de Pantin (table places), reconnu dans le champ lieu",
            "cluster_id": (
                "Groupe de doublons : même valeur pour les fiches d'un même événement réel publié "
                "par plusieurs sources (« cl- » + empreinte des identifiants des membres)"
            ),
            "is_canonical": (
                "1 pour la fiche à montrer (une par événement réel), 0 pour un doublon : filtrer "
                "is_canonical = 1 pour voir chaque événement une fois"
            ),
            "field_sources": (
                "Pour une fiche fusionnée : champ → identifiant de la fiche (events.id) d'où vient "
                "sa valeur (objet JSON)"
            ),
        },
    },
    "places": {
        "source": "place",
        "description": (
            "Lieux connus de Pantin (data/places.yaml) : adresse, quartier, position. "
            "Seuls les faits qu'une page publique citée affirme sont donnés (source_note) ; "
            "vide sinon."
        ),
        "columns": {
            "id": "Identifiant du lieu (events.place_id)",
            "name": "Nom du lieu",
            "kind": "maison-de-quartier | mediatheque | mairie | ccas | centre-de-sante | culture …",
            "address": "Adresse (vide si non connue avec certitude)",
            "postal_code": "Code postal",
            "city": "Commune",
            "quartier": "Quartier de Pantin",
            "latitude": "Latitude WGS 84 (degrés décimaux), donnée par la source citée ; vide sinon",
            "longitude": "Longitude WGS 84 (degrés décimaux), donnée par la source citée ; vide "
                         "sinon",
            "coordinates_verified": "1 si une source citée donne la position, 0 sinon",
            "aliases": "Autres graphies reconnues (liste JSON)",
            "source_note": "D'où viennent ces informations",
        },
    },
    "event_sources": {
        "source": "eventsource",
        "description": (
            "Provenance : chaque fiche de source derrière un événement publié (une ligne par "
            "membre d'un groupe de doublons, la fiche retenue comprise)."
        ),
        "columns": {
            "id": "« <événement retenu>|<fiche membre> »",
            "cluster_id": "Groupe de doublons (events.cluster_id)",
            "canonical_event_id": "Événement publié (events.id avec is_canonical = 1)",
            "event_id": "Fiche membre (events.id)",
            "source_id": "Source de la fiche (table sources)",
            "source_uid": "Identifiant de la fiche chez la source (UID iCalendar, GUID…)",
            "url": "Page de l'événement chez cette source",
            "source_url": "Adresse du flux de cette source",
            "publisher_type": "association | service-municipal | etablissement-public | autre",
            "confidence": "Score de ressemblance avec la fiche retenue (0 à 1 ; 1 pour elle-même)",
            "first_seen_at": f"Première collecte de cette fiche, {UTC_NOTE}",
            "last_seen_at": f"Dernière modification constatée de cette fiche, {UTC_NOTE}",
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
            "title": (
                "Titre propre à cette séance, seulement quand la source l'a changé pour elle "
                "(modification RECURRENCE-ID) ; vide sinon : le titre est alors celui de "
                "l'événement (events.title)"
            ),
            "location": (
                "Lieu propre à cette séance, seulement quand la source l'a changé pour elle "
                "(modification RECURRENCE-ID) ; vide sinon : le lieu est alors celui de "
                "l'événement (events.location)"
            ),
            "quartier": "Quartier de l'événement (copie de events.quartier, pour filtrer vite)",
            "live": (
                "1 si l'événement est publié (encore à sa source et non doublon d'un autre), "
                "0 sinon : copie pour filtrer vite"
            ),
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
            "status": ("active | paused (en pause : plus collectée, ses événements restent "
                       "publiés) | retired (retirée du registre : plus collectée, ses "
                       "événements ne sont plus publiés)"),
            "last_attempt_at": f"Dernière tentative, {UTC_NOTE}",
            "last_success_at": f"Dernière collecte réussie, {UTC_NOTE}",
            "consecutive_failures": "Échecs consécutifs",
            "last_error": "Dernière erreur, en clair",
            "health": (
                "Santé de la source : ok | warning (à surveiller) | failing (en panne)"
            ),
            "health_reason": "Pourquoi, en clair (ex. « seulement des événements passés »)",
            "health_checked_at": f"Date du calcul de la santé, {UTC_NOTE}",
            "last_changed_at": f"Dernière fois que le contenu de la source a changé, {UTC_NOTE}",
            "items_last_run": "Éléments lus à la dernière lecture",
            "items_recent": "Éléments lus aux dernières lectures, la plus récente d'abord (JSON)",
            "events_total": "Événements de la source encore présents chez elle",
            "events_upcoming": "Événements de la source ayant une séance à venir",
        },
    },
    "organisations": {
        "description": (
            "Organisations : celles qui publient nos sources, et les structures de l'annuaire "
            "data.inclusion (schéma v1 « structure »)."
        ),
        "columns": {
            "id": "Identifiant court ; « datainclusion--<producteur>--<id> » pour une structure",
            "name": "Nom",
            "type": "association | service-municipal | etablissement-public | autre ; typologie "
                    "data.inclusion v0 pour une structure",
            "website": "Site web",
            "source_id": "Source d'où vient la structure (table sources)",
            "source_uid": "Identifiant data.inclusion de la structure (« <producteur>--<id> »)",
            "siret": "Numéro SIRET (14 chiffres), quand il est valide",
            "rna": "Numéro RNA d'association (W suivi de 9 chiffres), quand il est valide",
            "description": "Présentation (texte brut)",
            "address": "Adresse",
            "address_extra": "Complément d'adresse",
            "postal_code": "Code postal",
            "city": "Commune",
            "insee_code": "Code Insee de la commune",
            "latitude": "Latitude (WGS 84)",
            "longitude": "Longitude (WGS 84)",
            "opening_hours": "Horaires d'accueil, tels que donnés (format OpenStreetMap "
                             "opening_hours attendu)",
            "opening_hours_valid": "1 si les horaires suivent la syntaxe OSM opening_hours, "
                                   "0 sinon (texte libre)",
            "networks": "Réseaux porteurs ou labels (liste JSON de codes data.inclusion)",
            "thematiques": "Thématiques data.inclusion (liste JSON)",
            "source_link": "Page de la structure chez le producteur",
            "accessibility_url": "Fiche d'accessibilité (Acceslibre)",
            "schema_version": "Version du schéma data.inclusion lue : v0 ou v1",
            "date_maj": "Dernière mise à jour chez le producteur (AAAA-MM-JJ)",
            "removed_at_source": f"Date où la structure a disparu de sa source, {UTC_NOTE}",
            "duplicate_of": (
                "Organisation dont celle-ci est un doublon (même SIRET ou RNA, ou même nom à la "
                "même adresse) ; vide pour l'organisation retenue"
            ),
        },
    },
    "services": {
        "description": (
            "Services d'insertion et de solidarité de l'annuaire data.inclusion (schéma v1 "
            "« service ») : thématiques, publics, frais, modes d'accueil, horaires."
        ),
        "columns": {
            "id": "Identifiant « datainclusion--<producteur>--<id> »",
            "source_id": "Source d'où vient le service (table sources)",
            "source_uid": "Identifiant data.inclusion du service",
            "organisation_id": "Structure qui porte le service (table organisations)",
            "name": "Nom du service",
            "summary": "Résumé (texte brut)",
            "description": "Description (texte brut)",
            "types": "Types de service (liste JSON, référentiel types-de-services)",
            "thematiques": "Thématiques (liste JSON, référentiel thematiques)",
            "publics": "Publics visés (liste JSON, référentiel publics)",
            "publics_precisions": "Précisions sur les publics",
            "frais": "gratuit | payant (liste JSON, référentiel frais)",
            "frais_precisions": "Précisions sur les frais",
            "modes_accueil": "a-distance | en-presentiel (liste JSON)",
            "modes_mobilisation": "Comment mobiliser le service (liste JSON)",
            "conditions_acces": "Conditions d'accès, prérequis, justificatifs",
            "opening_hours": "Horaires d'accueil, tels que donnés (OSM opening_hours attendu)",
            "opening_hours_valid": "1 si les horaires suivent la syntaxe OSM opening_hours",
            "address": "Adresse",
            "address_extra": "Complément d'adresse",
            "postal_code": "Code postal",
            "city": "Commune",
            "insee_code": "Code Insee de la commune",
            "latitude": "Latitude (WGS 84)",
            "longitude": "Longitude (WGS 84)",
            "source_link": "Page du service chez le producteur",
            "mobilisation_url": "Lien pour demander ou mobiliser le service",
            "zone": "Zone d'éligibilité ou de diffusion (liste JSON de codes Insee, départements…)",
            "unknown_codes": "Codes hors référentiel data.inclusion v1, par champ (objet JSON)",
            "schema_version": "Version du schéma data.inclusion lue : v0 ou v1",
            "date_maj": "Dernière mise à jour chez le producteur (AAAA-MM-JJ)",
            "suspended_from": "Service suspendu à partir de cette date (AAAA-MM-JJ)",
            "first_seen_at": f"Première collecte, {UTC_NOTE}",
            "updated_at": f"Dernière modification constatée, {UTC_NOTE}",
            "removed_at_source": f"Date où le service a disparu de sa source, {UTC_NOTE}",
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
