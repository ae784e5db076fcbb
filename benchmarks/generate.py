"""Synthetic stores for the benchmarks, set-based.

``add_accounts`` and ``add_rights`` fill one establishment (one executemany); ``build_dataset`` adds
the readiness-audit data set: 40,000 establishments and 300,000 accounts, delegated to the demo's
centre de gestion.
"""

from __future__ import annotations

# A seeded generator keeps the data set reproducible; it never serves for codes or secrets.
import random  # noqa: TID251
import re
import unicodedata
from datetime import timedelta

from sqlalchemy import insert
from sqlmodel import Session

from pepsctl import clock
from pepsctl.domain import accounts, passwords
from pepsctl.domain import validation as v
from pepsctl.domain.generic import generic_hint, refresh_hints
from pepsctl.store import queries
from pepsctl.store.models import Account

FIRST = ["Jeanne", "Paul", "Karim", "Sophie", "Lucas", "Claire", "Thomas", "Léa", "Hugo", "Nathalie"]
LAST = ["Dupont", "Leroy", "Benali", "Martin", "Bernard", "Petit", "Moreau", "Girard", "Lambert", "Roux"]


def add_accounts(engine, siret: str, count: int) -> None:
    now = clock.now()
    with Session(engine) as session, session.begin():
        establishment = queries.get_establishment_by_siret(session, siret)
        assert establishment is not None
        numbers = queries.next_numbers(session, "account", count)
        password_hash = passwords.hash_password("benchmark-password-long")
        rows = []
        for i, number in enumerate(numbers):
            first, last = FIRST[i % 10], LAST[(i // 10) % 10]
            email = f"{first.lower()}.{last.lower()}.{number}@bench.example.fr"
            rows.append(
                {
                    "identifier": v.format_identifier(v.identifier_prefix(first, last), number),
                    "establishment_id": establishment.id,
                    "profile": "user",
                    "civility": "M",
                    "last_name": last,
                    "first_name": first,
                    "email": email,
                    "phone": f"+336{number % 100000000:08d}",
                    "phone_type": "mobile",
                    "password_hash": password_hash,
                    "must_set_password": False,
                    "failed_attempts": 0,
                    "activated_at": now - timedelta(days=30),
                    "expires_at": accounts.add_months(now, 17),
                    "created_at": now,
                    "updated_at": now,
                    "generic_hint": generic_hint(first, last, email),  # as accounts create and import write it
                }
            )
        session.execute(insert(Account), rows)


def add_rights(engine, siret: str, services: list[str], per_account: int = 4) -> int:
    """Give every account of the establishment ``per_account`` rights (rotating services and levels)."""
    from sqlalchemy import select
    from sqlmodel import col

    from pepsctl.store.models import AccountRight

    now = clock.now()
    with Session(engine) as session, session.begin():
        establishment = queries.get_establishment_by_siret(session, siret)
        assert establishment is not None
        ids = list(session.scalars(select(Account.id).where(col(Account.establishment_id) == establishment.id)))
        session.execute(AccountRight.__table__.delete().where(col(AccountRight.establishment_id) == establishment.id))
        rows = [
            {
                "account_id": account_id,
                "establishment_id": establishment.id,
                "service_code": services[(i + k) % len(services)],
                "level": "write" if (i + k) % 3 == 0 else "read",
                "delegation_id": None,
                "granted_by": "benchmark",
                "granted_at": now,
            }
            for i, account_id in enumerate(ids)
            for k in range(per_account)
        ]
        session.execute(insert(AccountRight), rows)
    return len(rows)


# -- the benchmark data set: 40,000 establishments, 300,000 accounts, all delegated to the CDG ----


def _words(text: str, sep: str | None = None) -> list[str]:
    """A word list written as text ("_" stands for a space inside a name)."""
    return [w.strip().replace("_", " ") for w in text.split(sep) if w.strip()]


# Given names with their civility (a few hundred, the usual ones of French public employers' staff).
_WOMEN = _words("""Marie Nathalie Isabelle Sylvie Catherine Françoise Christine Valérie Sandrine Véronique Stéphanie
Sophie Céline Patricia Martine Nicole Chantal Anne Monique Brigitte Corinne Laurence Aurélie Émilie Julie
Caroline Virginie Karine Delphine Élodie Sabrina Audrey Mélanie Hélène Florence Dominique Pascale Claire
Camille Laura Sarah Manon Léa Chloé Emma Inès Lucie Pauline Marion Charlotte Anaïs Mathilde Justine Jeanne
Louise Alice Juliette Margaux Océane Marine Amandine Cécile Agnès Béatrice Danielle Évelyne Fabienne Gisèle
Josiane Laetitia Magali Muriel Nadine Odile Sylviane Yvette Annie Joëlle Ghislaine Estelle Gaëlle Maëlle
Solène Nadia Fatima Samira Yasmina Leïla Myriam Sonia Christelle Carole Sandra Vanessa Jessica Coralie
Alexandra Géraldine Anne-Sophie Marie-Claire Marie-Hélène Anne-Marie Marie-Christine Bernadette Colette
Jacqueline Michèle Denise Lydie Régine Rose Yolande Élise Clémence Noémie Zoé Ophélie Morgane Tiphaine
Armelle Soizic Maryse Aline Adeline Angélique Claudine Mireille Paulette Rachel Séverine Nora Malika Aïcha
Katia Natacha Lætitia Perrine Gwenaëlle Nolwenn Katell Ludivine Priscilla Cindy Marjorie Déborah""")
_MEN = _words("""Jean Pierre Michel Philippe Alain Nicolas Christophe Patrick Daniel Bernard Éric Laurent Frédéric
Stéphane David Olivier Pascal Thierry Sébastien Julien Christian Jacques Didier Gérard Franck Thomas Vincent
Alexandre Guillaume Jérôme Antoine Maxime Romain Mathieu Cédric Fabrice Hervé Bruno Serge Yves Marc Denis
Gilles Joël Lionel Ludovic Arnaud François Hugo Lucas Louis Théo Paul Arthur Léo Raphaël Gabriel Nathan
Enzo Clément Benjamin Florian Kévin Anthony Jonathan Damien Xavier Yannick Régis Rémi Sylvain Loïc Gaël
Erwan Yann Mickaël Grégory Jean-Pierre Jean-Claude Jean-Marc Jean-François Jean-Luc Jean-Michel Pierre-Yves
Marc-Antoine Karim Mohamed Rachid Mehdi Samir Yassine Farid Hakim Omar Bilal Kamel Nordine Abdel Henri René
Roger André Claude Georges Marcel Raymond Robert Guy Hubert Emmanuel Benoît Baptiste Quentin Adrien Bastien
Aurélien Valentin Tristan Victor Jules Martin Mathis Noé Timothée Gwenaël Ronan Tanguy Killian Jordan Dylan
Steeve Teddy Willy Johan Cyril Jérémy Alexis Matthieu Jean-Baptiste Jean-Paul Jean-Louis Dominique""")
# Surnames, commonest first (the draw favours the head of the list). "Bureau" and "Paye" are real
# surnames that are also role words: the audit must not accuse them alone.
_SURNAMES = _words("""Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel Lefebvre
Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau Vincent Muller
Lefèvre Faure André Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier Garcia Perrin
Robin Clément Morin Nicolas Henry Roussel Mathieu Gautier Masson Marchand Duval Denis Dumont Marie Lemaire
Noël Meyer Dufour Meunier Brun Blanchard Giraud Joly Rivière Lucas Brunet Gaillard Barbier Arnaud Martinez
Gérard Roche Renard Schmitt Roy Leroux Colin Vidal Caron Picard Roger Fabre Aubert Lemoine Renaud Dumas
Lacroix Olivier Philippe Bourgeois Pierre Benoît Rey Leclerc Payet Rolland Leclercq Guillaume Lecomte Lopez
Jean Dupuy Guillot Hubert Berger Carpentier Sanchez Dupuis Moulin Louis Deschamps Huet Vasseur Perez
Boucher Fleury Royer Klein Jacquet Adam Paris Poirier Marty Aubry Guyot Carré Charles Renault Charpentier
Ménard Maillard Baron Bertin Bailly Hervé Schneider Fernandez Le_Gall Collet Léger Bouvier Julien Prévost
Millet Perrot Daniel Le_Roux Cousin Germain Breton Besson Langlois Rémy Le_Goff Pelletier Lévêque Perrier
Leblanc Barré Lebrun Marchal Weber Mallet Hamon Boulanger Jacob Monnier Michaud Rodriguez Guichard Gillet
Étienne Grondin Poulain Tessier Chevallier Collin Chauvin Da_Silva Bouchet Gay Lemaître Bénard Maréchal
Humbert Reynaud Antoine Hoarau Perret Barthélemy Cordier Pichon Lejeune Gilbert Lamy Delaunay Pasquier
Carlier Laporte Benali Haddad Mansouri Belkacem Bensaïd Cherif Kaci Ferreira Pereira Dos_Santos Rodrigues
Gomes Lopes Nguyen Tran Pham Kowalski Nowak Lebon Tanguy Le_Bihan Kerjean Le_Corre Guillou Riou Quéméner
Le_Floch Jaouen Abgrall Ollivier Etcheverry Iriart Larrieu Lafont Camus Delmas Bousquet Courtois Texier
Tellier Vial Lagarde Bouvet Devaux Sauvage Ferrand Leconte Besnard Hamel Levasseur Lemarchand Delattre
Dubreuil Navarro Hernandez Bonnin Lebreton Pons Fournel Maurin Rigaud Castel Combes Jourdan Rossi Bianchi
Ricci Marin Leduc Duhamel Lesage Thibault Chauvet Valentin Régnier Bourdon Tissot Jolivet Coulon Aubin
Brunel Vallée Labbé Turpin Grenier D'Almeida Saint-Jean Bureau Paye Boyer-Martin Fontaine-Leroy""")
_COMMUNES = _words("""Saint-Martin Saint-Jean Saint-Pierre Sainte-Marie Saint-Laurent Saint-Germain Villeneuve Beaumont
Montigny Fontaine Bellevue Châteauneuf Neuville Montreuil Villiers Chaumont Champagne Bourg Pontarlier Aubenas
Privas Annonay Tournon Crest Nyons Die Montélimar Valence Romans Vienne Voiron Vizille Grenoble Échirolles
Meylan Chambéry Aix Albertville Annecy Thonon Évian Cluses Sallanches Bonneville Rumilly Belley Bourg-en-Bresse
Oyonnax Nantua Gex Ambérieu Trévoux Villefranche Tarare Givors Oullins Vénissieux Bron Rillieux Écully
Roanne Feurs Montbrison Firminy Rive-de-Gier Yssingeaux Brioude Issoire Riom Thiers Ambert Vichy Moulins
Montluçon Guéret Aubusson Ussel Tulle Brive Figeac Cahors Gourdon Souillac Sarlat Bergerac Périgueux Nontron
Ribérac Libourne Blaye Lesparre Arcachon Langon Bazas Marmande Nérac Agen Villeneuve-sur-Lot Condom Auch Mirande
Lectoure Lombez Tarbes Lourdes Bagnères Pau Oloron Orthez Bayonne Biarritz Dax Mont-de-Marsan Aire Hagetmau
Foix Pamiers Lavelanet Saint-Girons Muret Castres Albi Gaillac Lavaur Millau Rodez Villefranche-de-Rouergue
Mende Marvejols Florac Alès Uzès Nîmes Beaucaire Lunel Sète Béziers Agde Lodève Narbonne Limoux Carcassonne
Castelnaudary Perpignan Céret Prades Arles Tarascon Salon Istres Martigues Aubagne La_Ciotat Brignoles Draguignan
Fréjus Hyères Grasse Antibes Menton Digne Manosque Forcalquier Sisteron Gap Briançon Embrun Laval Mayenne
Château-Gontier Sablé La_Flèche Mamers Alençon Argentan Flers Vire Lisieux Bayeux Honfleur Falaise Coutances
Avranches Granville Valognes Fougères Vitré Redon Dinan Lannion Guingamp Paimpol Loudéac Pontivy Ploërmel
Vannes Lorient Quimperlé Concarneau Douarnenez Morlaix Landerneau Carhaix Châteaulin Quimper Brest Auray
Dieppe Fécamp Yvetot Bolbec Elbeuf Louviers Évreux Vernon Bernay Gisors Beauvais Compiègne Senlis Clermont
Noyon Soissons Laon Chauny Hirson Vervins Guise Péronne Doullens Abbeville Montdidier Albert Cambrai Douai
Valenciennes Maubeuge Avesnes Hazebrouck Armentières Béthune Lens Arras Calais Boulogne Montreuil-sur-Mer
Saint-Omer Sedan Rethel Vouziers Épernay Reims Vitry Sézanne Langres Wassy Bar-le-Duc Verdun Commercy
Toul Lunéville Nancy Épinal Remiremont Neufchâteau Sarrebourg Forbach Thionville Hagondange Haguenau
Saverne Molsheim Sélestat Colmar Guebwiller Altkirch Mulhouse Belfort Montbéliard Héricourt Lure Vesoul Gray
Dole Lons Champagnole Morteau Ornans Baume Autun Beaune Chalon Mâcon Louhans Charolles Nevers Cosne Clamecy
Auxerre Sens Joigny Avallon Tonnerre Montargis Gien Pithiviers Orléans Vendôme Blois Romorantin Vierzon
Bourges Issoudun Châteauroux Le_Blanc Loches Chinon Amboise Saumur Cholet Segré Ancenis Châteaubriant
Pornic Guérande Challans Luçon Fontenay Bressuire Parthenay Niort Melle Confolens Cognac Jarnac Saintes
Rochefort Royan Jonzac Marennes Montmorillon Loudun Châtellerault Bellac Rochechouart Limoges Saint-Junien
Saint-Denis Saint-Paul Saint-Benoît Le_Port Saint-Louis Le_Tampon Basse-Terre Pointe-à-Pitre Le_Lamentin
Fort-de-France Cayenne Kourou Mamoudzou""")
_SUFFIXES = ["", "", "", "", "", "-sur-Loire", "-sur-Mer", "-en-Bresse", "-le-Château", "-les-Bains", "-sur-Marne"]
_SUFFIXES += ["-en-Vexin", "-la-Forêt", "-sur-Saône", "-le-Vieux", "-sous-Bois", "-d'Azergues", "-en-Provence"]
_RIVERS = _words(
    """de la Loire|de la Garonne|de la Dordogne|de la Vienne|de la Creuse|du Lot|du Tarn
|de l'Aveyron|de l'Isère|de la Drôme
|de la Durance|de la Marne|de l'Oise|de l'Aisne|de la Somme|de la Meuse|de la Moselle|de la Saône|du Doubs|de l'Ain
|de l'Allier|du Cher|de l'Indre|de la Sarthe|de la Mayenne|de l'Orne|de la Vire|de la Rance|du Blavet|de l'Aulne
|de la Charente|de l'Adour|du Gers|de l'Ariège|de l'Aude|de l'Hérault|du Gard|de l'Ardèche|de l'Yonne|de la Seine""",
    "|",
)
_RESIDENCES = ["Les Tilleuls", "Les Glycines", "Le Clos fleuri", "Les Jardins", "La Roseraie", "Les Charmilles",
               "Bellevue", "Les Lilas", "Le Parc", "Les Ormes", "La Source", "Les Magnolias"]  # fmt: skip
_FUNCTIONS = ["Secrétaire de mairie", "Gestionnaire RH", "Gestionnaire paie", "Responsable des ressources humaines",
              "Direction générale des services", "Agent comptable", "Gestionnaire carrières", "Responsable financier",
              "Assistant(e) RH", "Chargé(e) de mission retraites", "Adjoint(e) administratif", "Rédacteur territorial",
              "Attaché(e) territorial(e)", "Pôle ressources humaines"]  # fmt: skip
_DEPARTMENTS = [f"{d:02d}" for d in range(1, 96) if d != 20] + ["97"]
# (kind, SIREN prefix, weight, name patterns, mailbox slug) — the kinds of employers affiliated to the funds.
_KINDS = [
    ("mairie", "21", 52, ["Mairie de {c}", "Commune de {c}"], "mairie-{s}"),
    ("ccas", "26", 12, ["CCAS de {c}", "Centre communal d'action sociale de {c}"], "ccas-{s}"),
    ("sivom", "25", 5, ["SIVOM de la vallée {r}", "SIVOM du canton de {c}", "SIVOM de {c} et environs"], "sivom-{s}"),
    ("sivu", "25", 4, ["SIVU scolaire de {c}", "SIVU du regroupement pédagogique de {c}"], "sivu-{s}"),
    ("syndicat", "25", 6, ["Syndicat intercommunal des eaux de {c}", "Syndicat mixte de la vallée {r}"], "si-{s}"),
    ("cc", "24", 5, ["Communauté de communes du pays de {c}", "Communauté d'agglomération de {c}"], "cc-{s}"),
    ("ehpad", "26", 6, ["EHPAD {h} de {c}", "Résidence {h} ({c})"], "ehpad-{s}"),
    ("ch", "26", 3, ["Centre hospitalier de {c}", "Hôpital local de {c}"], "ch-{s}"),
    ("ecoles", "26", 4, ["Caisse des écoles de {c}"], "cde-{s}"),
    ("cias", "20", 3, ["CIAS du pays de {c}", "Centre intercommunal d'action sociale de {c}"], "cias-{s}"),
]
# What a generic (shared) account looks like in real stores: (civility, first, last, mailbox local part).
_GENERIC = [
    ("MME", "Accueil", "{word}", "accueil"),
    ("MME", "Secrétariat", "{word}", "secretariat"),
    ("M", "Service", "RH", "rh"),
    ("MME", "Paie", "Personnel", "paie"),
    ("M", "Standard", "{word}", "standard"),
    ("MME", "Agent", "Accueil 2", "accueil2"),
    ("MME", "{first}", "{last}", "secretariat.{slug}"),  # a person's name on a role's mailbox
    ("M", "{first} et {first2}", "{last}", "{f}.{f2}.{l}"),  # two people in one account
    ("MME", "{first}", "{last} / {last2}", "{f}.{l}"),
]
_GENERIC_WORDS = {"mairie": "Mairie", "ccas": "CCAS", "ehpad": "EHPAD", "ch": "Direction", "cc": "Communauté"}


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    out = "".join(c if c.isalnum() else "-" for c in plain.replace("'", ""))
    return "-".join(part for part in out.split("-") if part)


def _weighted(rng: random.Random, items: list, k: int) -> list:
    """``k`` draws favouring the head of ``items`` (≈ the frequency of French names)."""
    weights = [1 / (rank + 8) for rank in range(len(items))]
    return rng.choices(items, weights=weights, k=k)


def _sizes(rng: random.Random, establishments: int, total: int) -> list[int]:
    """Accounts per establishment: most 3–12, some 1–2, a few large; summing exactly to ``total``."""
    sizes = []
    large = []
    for i in range(establishments):
        u = rng.random()
        if u < 0.10:
            sizes.append(rng.randint(1, 2))
        elif u < 0.955:
            sizes.append(rng.choice((3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 8, 8, 9, 10, 11, 12)))
        else:
            sizes.append(13)
            large.append(i)
    remaining = total - sum(sizes)
    if remaining < 0 or not large:
        raise ValueError(f"cannot spread {total} accounts over {establishments} establishments")
    # Large employers (hospitals, towns, agglomerations): a heavy tail (the largest ≈ 1,400 accounts).
    weights = [min(rng.paretovariate(1.3), 200.0) for _ in large]
    scale = remaining / sum(weights)
    extra = [int(w * scale) for w in weights]
    extra[0] += remaining - sum(extra)
    for i, add in zip(large, extra, strict=True):
        sizes[i] += add
    assert sum(sizes) == total
    return sizes


def _siret(rng: random.Random, prefix: str, used: set[str]) -> str:
    """A valid SIRET (Luhn on the SIREN and on the 14 digits) that is not in ``used``."""
    from stdnum import luhn
    from stdnum.fr import siret

    while True:
        body = prefix + f"{rng.randrange(10_000):04d}"
        siren = body + luhn.calc_check_digit(body)
        nic = f"{rng.choice((1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 10, 12, 15, 21)):04d}"
        number = siren + nic + luhn.calc_check_digit(siren + nic)
        if number not in used and siret.is_valid(number):
            used.add(number)
            return number


class _Phones:
    """Unique E.164 numbers with their type, drawn from ranges phonenumbers accepts."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def _unique(self, make) -> str:
        while True:
            number = make()
            if number not in self.used:
                self.used.add(number)
                return number

    def draw(self, overseas: bool) -> tuple[str, str]:
        r = self.rng
        u = r.random()
        if overseas and u < 0.8:
            prefix = r.choice(("+262692", "+262693", "+590690", "+596696", "+594694", "+262639"))
            return self._checked(lambda: f"{prefix}{r.randrange(10**6):06d}", "mobile"), "mobile"
        if u < 0.62:  # 060–062 and 064–068: metropolitan mobiles, every number valid (063, 069: overseas)
            second = r.choice("0124578" + "6" * 3)
            return self._unique(lambda: f"+336{second}{r.randrange(10**7):07d}"), "mobile"
        if u < 0.88:  # 073–079: metropolitan mobiles, every number valid
            return self._unique(lambda: f"+337{r.randint(3, 9)}{r.randrange(10**7):07d}"), "mobile"
        if u < 0.985:  # a desk landline: the code comes by voice call
            return self._checked(lambda: f"+33{r.randint(1, 5)}{r.randrange(10**8):08d}", "landline"), "landline"
        return self._checked(lambda: f"+339{r.randrange(10**8):08d}", "voip"), "voip"

    def _checked(self, make, kind: str) -> str:
        """A number of a range with holes: drawn again until phonenumbers accepts it with that type."""
        import phonenumbers

        types = {"mobile": 1, "landline": 0, "voip": 6}
        while True:
            number = self._unique(make)
            parsed = phonenumbers.parse(number)
            if phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) == types[kind]:
                return number

    def invalid(self) -> str:
        """A stored value that can receive neither SMS nor call (kept from an old import)."""
        r = self.rng
        return r.choice(
            (
                f"+33899{r.randrange(10**6):06d}",  # premium rate
                f"+33836{r.randrange(10**6):06d}",
                f"+336{r.randrange(10**6):06d}",  # too short
                f"06{r.randrange(10**8):08d}",  # never normalised
                "3939",  # a short number
            )
        )


def build_dataset(
    engine,
    *,
    establishments: int = 40_000,
    accounts: int = 300_000,
    centralizer_siret: str | None = None,
    seed: int = 20261124,
    analyze: bool = True,
) -> dict[str, int]:
    """Add the benchmark data set to a store that holds the demo (``init --demo``); return counts.

    ``establishments`` employers with valid SIRETs and fund contracts, ``accounts`` accounts spread
    unevenly (most establishments 3–12), realistic French names and mailboxes, identifiers from the
    store's ``account`` counter, 1–3 administrators (none for ≈ 0.7 %), E.164 phones with their type
    (≈ 2 % missing, ≈ 0.5 % shared, ≈ 0.1 % invalid with no type), ≈ 0.4 % generic accounts, expired,
    stale, never-used and pending accounts, CGU accepted by ≈ 93 %; then an accepted delegation from
    every one of them to the demo's centre de gestion, its scope holding account management
    (``gestion-comptes``) and a few other services. Set-based: COPY on PostgreSQL, executemany on
    SQLite (``queries.bulk_insert``), in chunks, in one transaction. Reproducible for a ``seed``.
    ``analyze``: VACUUM ANALYZE afterwards on PostgreSQL (what autovacuum does within a minute of a
    bulk load: statistics, and the visibility map for index-only scans); SQLite is left as pepsctl
    leaves it (no statistics).
    """
    from sqlalchemy import select, text
    from sqlmodel import col

    from pepsctl.domain.demo import CDG_SIRET
    from pepsctl.domain.establishments import CGU_VERSION
    from pepsctl.store.models import Delegation, DelegationService, Establishment, EstablishmentFund, Service

    rng = random.Random(seed)
    now = clock.now()
    sizes = _sizes(rng, establishments, accounts)
    kinds = [k for k in _KINDS for _ in range(k[2])]
    used_sirets: set[str] = set()
    used_domains: set[str] = set()
    plan = []  # (siret, name, kind, domain, size, administrators, overseas)
    for size in sizes:
        kind, prefix, _w, patterns, slug_pattern = rng.choice(kinds)
        if size > 60 and kind not in ("mairie", "ch", "cc"):
            kind, prefix, _w, patterns, slug_pattern = rng.choice([k for k in _KINDS if k[0] in ("mairie", "ch", "cc")])
        department = rng.choice(_DEPARTMENTS)
        commune = rng.choice(_COMMUNES) + (rng.choice(_SUFFIXES) if rng.random() < 0.3 else "")
        name = rng.choice(patterns).format(c=commune, r=rng.choice(_RIVERS), h=rng.choice(_RESIDENCES))
        name = re.sub(r"\bde ([AEIOUYÉÈÂ])", r"d'\1", name.replace(" de Le ", " du ").replace(" de Les ", " des "))
        domain = slug_pattern.format(s=_ascii_slug(commune))
        if domain in used_domains:
            domain = f"{domain}-{department}"
            n = 2
            while f"{domain}-{n}" in used_domains:
                n += 1
            domain = domain if domain not in used_domains else f"{domain}-{n}"
        used_domains.add(domain)
        u = rng.random()
        admins = 0 if u < 0.0075 else 1 if u < 0.45 else 2 if u < 0.85 else 3
        plan.append(
            (
                _siret(rng, prefix + department, used_sirets),
                name,
                kind,
                f"{domain}.example.fr",
                size,
                min(admins, size),
                department == "97",
            )
        )

    password_hash = passwords.hash_password("benchmark-password-long")
    counts = {"establishments": len(plan), "accounts": accounts}
    with Session(engine) as session, session.begin():
        centralizer = queries.get_establishment_by_siret(session, centralizer_siret or CDG_SIRET)
        assert centralizer is not None and centralizer.id is not None, "run 'pepsctl init --demo' first"
        cdg_admin = queries.administrators_of(session, centralizer.id)[0].identifier
        first_number = queries.next_numbers(session, "account", accounts).start

        est_rows, fund_rows = [], []
        for siret, name, _kind, _domain, _size, admins, _overseas in plan:
            created = now - timedelta(days=rng.randint(120, 2400))
            cgu = admins > 0 and rng.random() < 0.93
            est_rows.append(
                {
                    "siret": siret,
                    "siren": siret[:9],
                    "name": name,
                    "registration_path": "classic" if rng.random() < 0.8 else "net-entreprises",
                    "status": "active" if admins else rng.choice(("active", "pending")),
                    "cgu_version": CGU_VERSION if cgu else None,
                    "cgu_accepted_at": now - timedelta(days=rng.randint(1, 500), seconds=rng.randrange(86400))
                    if cgu
                    else None,
                    "cgu_accepted_by": None,  # set below, from the accounts: one of its administrators
                    "created_at": created,
                    "updated_at": created,
                }
            )
        queries.bulk_insert(session, Establishment, est_rows)
        ids = dict(
            session.execute(
                select(Establishment.siret, Establishment.id).where(col(Establishment.id) > centralizer.id)
            ).all()
        )
        est_ids = [ids[p[0]] for p in plan]
        for est_id, (_s, _n, kind, _d, _size, _a, _o) in zip(est_ids, plan, strict=True):
            funds = ["CNRACL"] if kind != "cc" or rng.random() < 0.7 else []
            if rng.random() < 0.75 or not funds:
                funds.append("IRCANTEC")
            if rng.random() < 0.1:
                funds.append(rng.choice(("RAFP", "FNC")))
            for fund in funds:
                number = {
                    "CNRACL": f"C-{rng.randint(10, 95)}-{rng.randrange(10**6):06d}",
                    "IRCANTEC": f"I-{rng.randint(1990, 2025)}-{rng.randrange(10**5):05d}",
                    "RAFP": f"R-{rng.randrange(10**7):07d}",
                    "FNC": f"F-{rng.randrange(10**6):06d}",
                }[fund]
                fund_rows.append({"establishment_id": est_id, "fund": fund, "contract_number": number})
        queries.bulk_insert(session, EstablishmentFund, fund_rows)
        counts["fund_contracts"] = len(fund_rows)

        first_admins: dict[int, str] = {}
        stats = dict.fromkeys(("generic", "shared_phone", "missing_phone", "invalid_phone", "expired"), 0)
        rows = _account_rows(rng, plan, est_ids, first_number, now, password_hash, first_admins, stats)
        while chunk := [row for _i, row in zip(range(50_000), rows, strict=False)]:
            queries.bulk_insert(session, Account, chunk)
        counts.update(stats)
        session.execute(
            text(
                "UPDATE establishment SET cgu_accepted_by = a.identifier FROM (SELECT establishment_id, "
                "min(identifier) AS identifier FROM account WHERE profile = 'admin' GROUP BY establishment_id) AS a "
                "WHERE a.establishment_id = establishment.id AND establishment.cgu_accepted_at IS NOT NULL "
                "AND establishment.cgu_accepted_by IS NULL"
            )
        )

        delegation_rows = []
        for est_id in est_ids:
            asked = now - timedelta(days=rng.randint(5, 400), seconds=rng.randrange(86400))
            delegation_rows.append(
                {
                    "centralizer_id": centralizer.id,
                    "establishment_id": est_id,
                    "status": "accepted",
                    "ends_at": None,
                    "requested_by": cdg_admin,
                    "requested_at": asked,
                    "decided_by": first_admins.get(est_id, "system:benchmark"),
                    "decided_at": asked + timedelta(days=rng.randint(0, 20), seconds=rng.randrange(86400)),
                    "reason": None,
                    "revoked_by": None,
                    "revoked_at": None,
                }
            )
        queries.bulk_insert(session, Delegation, delegation_rows)
        new_ids = set(est_ids)
        delegations = [
            (d_id, e_id)
            for d_id, e_id in session.execute(
                select(Delegation.id, Delegation.establishment_id).where(
                    col(Delegation.centralizer_id) == centralizer.id
                )
            )
            if e_id in new_ids
        ]
        services = list(
            session.scalars(
                select(Service.code).where(col(Service.held_by).is_(None)).where(col(Service.retired_at).is_(None))
            )
        )
        admin_services = list(session.scalars(select(Service.code).where(col(Service.held_by) == "admin")))
        scope_rows = [
            {"delegation_id": d_id, "service_code": code}
            for d_id, _e in delegations
            for code in admin_services + rng.sample(services, rng.randint(2, 6))
        ]
        queries.bulk_insert(session, DelegationService, scope_rows)
        counts["delegations"] = len(delegation_rows)
        counts["delegation_services"] = len(scope_rows)
        # As pepsctl does before every commit: the generic-account verdicts of the new accounts.
        counts["generic_hints"] = refresh_hints(session)
    if analyze and engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return counts


def _account_rows(rng, plan, est_ids, number, now, password_hash, first_admins, stats):
    """Yield the account rows, establishment by establishment (a generator: inserted in chunks)."""
    phones = _Phones(rng)
    people = [("MME", f) for f in _WOMEN] + [("M", m) for m in _MEN]
    previous_phones: list[tuple[str, str | None]] = []
    for est_id, (_siret, _name, kind, domain, size, admins, overseas) in zip(est_ids, plan, strict=True):
        locals_: set[str] = set()
        own: list[tuple[str | None, str | None, str]] = []  # (phone, type, email) of its accounts so far
        names = _weighted(rng, _SURNAMES, size * 2)
        for j in range(size):
            profile = "admin" if j < admins else "user"
            civility, first = rng.choice(people)
            last = names[j]
            local = f"{_ascii_slug(first)}.{_ascii_slug(last)}"
            generic = profile == "user" and rng.random() < 0.004
            if generic:
                stats["generic"] += 1
                civility, g_first, g_last, g_local = rng.choice(_GENERIC)
                first2, last2 = rng.choice(people)[1], names[size + j]
                word = _GENERIC_WORDS.get(kind, "Mairie")
                values = {"first": first, "first2": first2, "last": last, "last2": last2, "word": word}
                slug = {"f": _ascii_slug(first), "f2": _ascii_slug(first2), "l": _ascii_slug(last), "slug": kind}
                first, last = g_first.format(**values), g_last.format(**values)
                local = g_local.format(**slug)
            elif rng.random() < 0.0003:
                first = ""  # a legacy row without its first name
            if local in locals_ and not generic:
                n = 2
                while f"{local}{n}" in locals_:
                    n += 1
                local = f"{local}{n}"
            locals_.add(local)
            email = f"{local}@{domain}"
            if own and not generic and rng.random() < 0.0015:
                email = own[rng.randrange(len(own))][2]  # one mailbox for two accounts
            u = rng.random()
            pool = None
            if 0.021 <= u < 0.0235:
                # The same number as a colleague here, or (more rarely) as someone elsewhere.
                pool = [(p, t) for p, t, _e in own if p] if rng.random() < 0.85 else previous_phones
            if u < 0.02:
                phone, phone_type = None, None
                stats["missing_phone"] += 1
            elif u < 0.021:
                phone, phone_type = phones.invalid(), None
                stats["invalid_phone"] += 1
            elif pool:
                phone, phone_type = rng.choice(pool)
                stats["shared_phone"] += 1
            else:
                phone, phone_type = phones.draw(overseas)
            state = _state(rng, profile)
            row = _account_dates(rng, state, now)
            if state == "expired":
                stats["expired"] += 1
            identifier = v.format_identifier(v.identifier_prefix(first, last), number)
            number += 1
            if profile == "admin" and est_id not in first_admins:
                first_admins[est_id] = identifier
            row.update(
                identifier=identifier,
                establishment_id=est_id,
                profile=profile,
                civility=civility,
                last_name=last,
                first_name=first,
                email=email,
                phone=phone,
                phone_type=phone_type,
                function=rng.choice(_FUNCTIONS) if rng.random() < 0.55 else None,
                password_hash=None if state == "pending" else password_hash,
                must_set_password=state == "pending",
                totp_secret=None,
                totp_last_step=None,
                totp_enabled_at=None,
            )
            if phone is None or row["last_login_at"] is None or rng.random() < 0.05:
                row["phone_verified_at"] = None  # never proven by a code (or changed since)
            own.append((phone, phone_type, email))
            yield row
        previous_phones = [(p, t) for p, t, _e in own if p] or previous_phones


def _state(rng: random.Random, profile: str) -> str:
    u = rng.random()
    if profile == "admin":
        return "expired" if u < 0.01 else "stale" if u < 0.02 else "locked" if u < 0.025 else "active"
    for state, threshold in (("pending", 0.01), ("expired", 0.04), ("stale", 0.07), ("never", 0.11)):
        if u < threshold:
            return state
    return "locked" if u < 0.113 else "active"


def _account_dates(rng: random.Random, state: str, now) -> dict:
    def ago(low: int, high: int):
        return now - timedelta(days=rng.randint(low, high), seconds=rng.randrange(86400))

    renewed = None
    locked = None
    if state == "pending":
        created = ago(16, 200) if rng.random() < 0.8 else ago(1, 14)
        activated = last_login = expires = None
    else:
        if state == "expired":
            activated = ago(560, 1500)
        elif state == "stale":
            activated = ago(600, 2000)
            renewed = ago(10, 400)  # renewed in bulk, but nobody logged in since
        elif state == "never":
            activated = ago(5, 500)
        else:
            activated = ago(30, 2000)
            if (now - activated).days > 540:
                renewed = ago(1, 500)
        created = activated - timedelta(days=rng.randint(0, 10), seconds=rng.randrange(86400))
        expires = accounts.add_months(renewed or activated, 18)
        if state == "never":
            last_login = None
        elif state == "stale":
            last_login = max(ago(560, 900), activated)
        elif state == "expired":
            last_login = activated + (expires - activated) * rng.random() if rng.random() < 0.8 else None
        else:
            last_login = max(ago(0, 120), activated)
        if state == "locked":
            locked = ago(1, 60)
    return {
        "phone_verified_at": last_login,
        "failed_attempts": 5 if locked else 0,
        "locked_at": locked,
        "activated_at": activated,
        "renewed_at": renewed,
        "expires_at": expires,
        "last_login_at": last_login,
        "created_at": created,
        "updated_at": max(d for d in (created, activated, renewed, last_login, locked) if d is not None),
    }
