"""Shared plumbing of the registration, moderation and status pages (issue 6).

One Jinja environment over ``publish/web/templates`` (autoescaped), the page language (``?lang=``,
then the ``tissu_lang`` cookie, then French; Arabic is right to left), a small French-first
message catalogue (:data:`MESSAGES`, French, English, Arabic), the working store, and a per-client
sliding-window limiter for actions that cost us (checks that fetch a URL, login attempts).

Forms are protected by Datasette's CSRF middleware (asgi-csrf): every POST form carries the
``csrftoken`` hidden field rendered by :func:`render` from ``request.scope["csrftoken"]``.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import jinja2
from datasette.utils.asgi import Response
from sqlalchemy.engine import Engine

from publish.web.resident_i18n import LANG_COOKIE, LANGUAGE_NAMES, pick_language, text_direction
from schemas.store import make_engine
from tissu.settings import Settings, get_settings

TEMPLATES = Path(__file__).resolve().parent / "templates"
T = TypeVar("T")

#: key → (French, English, Arabic). French is the reference text.
MESSAGES: dict[str, tuple[str, str, str]] = {
    "site": ("Tissu — l'agenda solidaire de Pantin", "Tissu — Pantin's solidarity calendar",
             "Tissu — رزنامة التضامن في بانتان"),
    "register.title": ("Inscrire l'agenda de votre organisation",
                       "Register your organisation's calendar", "سجّلوا رزنامة جهتكم"),
    "register.intro": (
        ("Deux minutes suffisent, sans compte à créer. Une personne de l'équipe Tissu vérifie "
        "chaque inscription avant publication."),
        ("It takes two minutes and no account. Someone from the Tissu team checks every "
        "registration before it is published."),
        "دقيقتان تكفيان، دون إنشاء حساب. يتحقق أحد أعضاء فريق Tissu من كل تسجيل قبل نشره."),
    "field.organisation_name": ("Nom de l'organisation", "Organisation name", "اسم الجهة"),
    "field.organisation_type": ("Type d'organisation", "Type of organisation", "نوع الجهة"),
    "type.association": ("Association", "Association (non-profit)", "جمعية"),
    "type.service-municipal": ("Service municipal", "City service", "مصلحة بلدية"),
    "type.etablissement-public": ("Établissement public", "Public body", "مؤسسة عمومية"),
    "type.autre": ("Autre", "Other", "أخرى"),
    "field.website": ("Site web (facultatif)", "Website (optional)",
                      "الموقع الإلكتروني (اختياري)"),
    "field.contact_email": ("E-mail de contact", "Contact e-mail", "البريد الإلكتروني للتواصل"),
    "help.contact_email": (
        "Privé : jamais publié. Il sert seulement à vous prévenir.",
        "Private: never published. Only used to keep you informed.",
        "خاص: لا يُنشر أبداً، ويُستعمل فقط لإعلامكم."),
    "field.url": ("Adresse du calendrier ou du flux", "Calendar or feed address",
                  "عنوان الرزنامة أو التدفق"),
    "help.url": (
        ("Le lien d'export de votre agenda (.ics de préférence). Si vous n'avez que l'adresse "
        "d'une page, le bouton « Vérifier » vous dira comment trouver le bon lien."),
        ("The export link of your calendar (.ics preferably). If you only have a web page, the "
        "“Check” button will tell you how to find the right link."),
        ("رابط تصدير رزنامتكم (يُفضَّل ‎.ics‎). إن لم يكن لديكم سوى عنوان صفحة، سيخبركم زر "
        "«تحقّق» كيف تجدون الرابط الصحيح.")),
    "field.feed_name": ("Nom de l'agenda (facultatif)", "Calendar name (optional)",
                        "اسم الرزنامة (اختياري)"),
    "field.licence": ("Licence", "Licence", "الترخيص"),
    "licence.licence-ouverte": (
        ("Ces événements peuvent être publiés sous Licence Ouverte 2.0 (réutilisation libre en "
        "citant la source)."),
        ("These events may be published under the Licence Ouverte 2.0 (Open Licence: free reuse "
        "with attribution)."),
        "يمكن نشر هذه الفعاليات بموجب الترخيص المفتوح 2.0 (إعادة استعمال حرة مع ذكر المصدر)."),
    "licence.own": ("Ils ont déjà leur propre licence, que voici :",
                    "They already have their own licence:", "لها ترخيصها الخاص، وهو:"),
    "field.licence_consent": (
        ("Je confirme avoir le droit de publier cet agenda et j'accepte qu'il soit repris dans "
        "Tissu sous cette licence."),
        ("I confirm I may publish this calendar and agree to its reuse in Tissu under this "
        "licence."),
        "أؤكد أن لي الحق في نشر هذه الرزنامة وأوافق على إدراجها في Tissu بموجب هذا الترخيص."),
    "field.themes": ("Thèmes par défaut de vos événements", "Default themes of your events",
                     "المواضيع الافتراضية لفعالياتكم"),
    "field.quartier": ("Quartier (facultatif)", "Neighbourhood (optional)", "الحي (اختياري)"),
    "quartier.none": ("— toute la ville —", "— the whole town —", "— المدينة كلها —"),
    "field.honeypot": ("Ne remplissez pas ce champ", "Leave this field empty",
                       "اتركوا هذه الخانة فارغة"),
    "button.check": ("Vérifier", "Check", "تحقّق"),
    "button.submit": ("Envoyer l'inscription", "Submit the registration", "أرسل التسجيل"),
    "thanks.title": ("Merci, c'est reçu !", "Thank you, it's in!", "شكراً، وصلنا طلبكم!"),
    "thanks.text": (
        ("Votre inscription attend la validation d'un modérateur. Vous recevrez un e-mail dès "
        "qu'elle sera acceptée."),
        ("Your registration is waiting for a moderator. You will get an e-mail as soon as it is "
        "accepted."),
        "تسجيلكم في انتظار موافقة المشرف. ستصلكم رسالة إلكترونية فور قبوله."),
    "error.summary": ("Le formulaire contient des erreurs : voyez les champs signalés.",
                      "The form has errors: see the marked fields.",
                      "يحتوي النموذج على أخطاء: انظروا الخانات المشار إليها."),
    "error.required": ("Ce champ est obligatoire.", "This field is required.",
                       "هذه الخانة إلزامية."),
    "error.too-short": ("Trop court.", "Too short.", "قصير جداً."),
    "error.too-long": ("Trop long.", "Too long.", "طويل جداً."),
    "error.email": ("Adresse e-mail invalide.", "Invalid e-mail address.",
                    "عنوان بريد إلكتروني غير صالح."),
    "error.http-url": ("L'adresse doit commencer par http:// ou https://.",
                       "The address must start with http:// or https://.",
                       "يجب أن يبدأ العنوان بـ http://‎ أو https://‎."),
    "error.consent": ("Cochez cette case pour continuer.", "Tick this box to continue.",
                      "ضعوا علامة في هذه الخانة للمتابعة."),
    "error.choice": ("Choisissez une valeur de la liste.", "Choose a value from the list.",
                     "اختاروا قيمة من القائمة."),
    "error.own-licence": ("Indiquez le nom de votre licence.", "Give the name of your licence.",
                          "اذكروا اسم ترخيصكم."),
    "error.invalid": ("Valeur invalide.", "Invalid value.", "قيمة غير صالحة."),
    "error.rate": (
        "Trop d'envois depuis cette connexion. Réessayez dans une heure.",
        "Too many submissions from this connection. Please try again in an hour.",
        "عدد كبير من الإرسالات من هذا الاتصال. حاولوا مجدداً بعد ساعة."),
    "error.not-usable": (
        "Cette adresse ne peut pas être inscrite telle quelle : lisez le diagnostic ci-dessous.",
        "This address cannot be registered as it is: read the diagnosis below.",
        "لا يمكن تسجيل هذا العنوان كما هو: اقرؤوا التشخيص أدناه."),
    "doctor.title": ("Diagnostic de votre agenda", "Diagnosis of your calendar", "تشخيص رزنامتكم"),
    "doctor.french": ("", "(The diagnosis is written in French.)", "(التشخيص مكتوب بالفرنسية.)"),
    "doctor.format": ("Format trouvé", "Format found", "الصيغة المكتشفة"),
    "doctor.counts": ("Événements", "Events", "الفعاليات"),
    "doctor.upcoming": ("séances à venir", "upcoming sessions", "مواعيد قادمة"),
    "doctor.next": ("Les prochaines séances, telles qu'elles seront publiées",
                    "The next sessions, as they will be published",
                    "المواعيد القادمة كما ستُنشر"),
    "doctor.ok": ("Aucun problème trouvé : vous pouvez envoyer l'inscription.",
                  "No problem found: you can submit the registration.",
                  "لم نجد أي مشكلة: يمكنكم إرسال التسجيل."),
    "doctor.problem": ("Problème", "Problem", "مشكلة"),
    "doctor.warning": ("À corriger", "To fix", "يجب إصلاحه"),
    "doctor.fix": ("Comment faire", "How to fix it", "طريقة الإصلاح"),
    "status.title": ("État des sources", "Status of the sources", "حالة المصادر"),
    "status.intro": (
        ("Chaque agenda collecté par Tissu, et s'il est en bonne santé. Les incidents sont aussi "
        "publiés en flux Atom."),
        ("Every calendar Tissu collects, and whether it is healthy. Incidents are also published "
        "as an Atom feed."),
        "كل رزنامة يجمعها Tissu وحالتها. تُنشر الأعطال أيضاً في تدفق Atom."),
    "status.atom": ("Flux Atom des incidents", "Atom feed of incidents", "تدفق Atom للأعطال"),
    "status.source": ("Source", "Source", "المصدر"),
    "status.health": ("État", "Status", "الحالة"),
    "status.last_success": ("Dernière collecte réussie", "Last successful harvest",
                            "آخر جمع ناجح"),
    "status.trend": ("Événements lus (dernières lectures)", "Events read (latest reads)",
                     "الفعاليات المقروءة (آخر القراءات)"),
    "status.reason": ("Détail", "Details", "التفاصيل"),
    "status.never": ("jamais", "never", "أبداً"),
    "status.ok": ("En forme", "Healthy", "سليم"),
    "status.warning": ("À surveiller", "Needs attention", "يحتاج متابعة"),
    "status.failing": ("En panne", "Failing", "معطّل"),
    "status.none": ("Aucune source pour l'instant.", "No source yet.", "لا توجد مصادر حالياً."),
    "status.counts": ("{ok} en forme, {warning} à surveiller, {failing} en panne",
                      "{ok} healthy, {warning} need attention, {failing} failing",
                      "{ok} سليم، {warning} يحتاج متابعة، {failing} معطّل"),
    "status.register": ("Inscrire un agenda", "Register a calendar", "سجّلوا رزنامة"),
}
_INDEX = {"fr": 0, "en": 1, "ar": 2}


def t(lang: str, key: str, **values: object) -> str:
    """The message ``key`` in ``lang`` (French when missing), formatted with ``values``."""
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    text = entry[_INDEX.get(lang, 0)] or entry[0]
    return text.format(**values) if values else text


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja environment of these pages (autoescaped HTML)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              autoescape=jinja2.select_autoescape(["html", "xml"]),
                              trim_blocks=True, lstrip_blocks=True)


def language(request: Any, form: dict[str, list[str]] | None = None) -> str:
    """The page language: a ``lang`` form field, ``?lang=``, the ``tissu_lang`` cookie, French."""
    posted = (form or {}).get("lang", [None])[0]
    return pick_language(posted or request.args.get("lang"), request.cookies.get(LANG_COOKIE))


def render(request: Any, template: str, context: dict[str, Any], lang: str = "fr",
           status: int = 200) -> Response:
    """Render ``template`` with the language helpers and the CSRF token, as an HTML response."""
    token = request.scope.get("csrftoken")
    base = {
        "lang": lang, "dir": text_direction(lang), "t": lambda key, **kw: t(lang, key, **kw),
        "languages": list(LANGUAGE_NAMES.items()), "path": request.path,
        "csrftoken": token() if callable(token) else "",
    }
    html = environment().get_template(template).render({**base, **context})
    response = Response.html(html, status=status)
    response.headers["Content-Language"] = lang
    response.headers["Cache-Control"] = "no-store"
    return response


async def form_data(request: Any) -> dict[str, list[str]]:
    """The POSTed ``application/x-www-form-urlencoded`` fields, each a list (checkboxes)."""
    body = await request.post_body()
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def client_ip(request: Any) -> str:
    """The client's address as the ASGI server saw it (behind a proxy: the proxy's)."""
    client = request.scope.get("client")
    return str(client[0]) if client else "inconnu"


def settings() -> Settings:
    """Settings from the environment (``tissu serve`` passes the working store's URL)."""
    return get_settings()


@lru_cache(maxsize=4)
def _engine(url: str) -> Engine:
    return make_engine(url)


def engine() -> Engine:
    """The working store's engine (one per database URL and process)."""
    return _engine(settings().database_url)


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work (database, network) off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


class SlidingWindow:
    """At most ``limit`` hits per key within ``window`` seconds, in this process."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque)
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Record a hit for ``key``; False (and not recorded) when over the limit."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True
