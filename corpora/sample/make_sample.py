"""Generate the fictional sample corpus in the ADE corpus v2 format.

Every sentence is composed here from templates (nothing is copied from the real corpus); the
PubMed IDs are 8-digit numbers starting with 9 (90000001, ...) so they cannot be mistaken for
real ones.  The output has the three files of the distribution:

- ``DRUG-AE.rel``   ``PMID|sentence|adverse effect|AE begin|AE end|drug|drug begin|drug end``
- ``DRUG-DOSE.rel`` ``PMID|sentence|dose|dose begin|dose end|drug|drug begin|drug end``
- ``ADE-NEG.txt``   ``PMID NEG sentence``

Offsets are document-level and end-exclusive, as in the real corpus: a document is
``PMID + "\\n\\n" + title + "\\n\\n" + abstract`` where the abstract is its sentences joined by
single spaces and the title is the document's first sentence.

Quirks deliberately included (all real-corpus properties):

- one sentence on several lines (two drugs and one AE, one drug and two AEs, 2 x 2);
- multi-word drugs ("valproic acid"), drugs with digits ("5-fluorouracil", "interferon alfa-2b"),
  hyphenated drug names ("trimethoprim-sulfamethoxazole");
- drugs inside hyphenated tokens ("clozapine-induced agranulocytosis");
- a drug (or an adverse effect) written twice in one sentence with only one occurrence annotated;
- nested mentions: an adverse effect that contains the drug ("heparin-induced thrombocytopenia"
  with drug "heparin", "lithium toxicity" with drug "lithium");
- doses ("500 mg daily", "75 mg/m2", "0.25 mg daily"); every DRUG-DOSE sentence is also a
  DRUG-AE sentence, as in the real files;
- ADE-NEG sentences that name a drug, a dose or an adverse-effect term without any relation;
- structured abstracts ("BACKGROUND: ...", "CASE REPORT: ...") on some documents.

Standard library only and deterministic: ``python make_sample.py`` rewrites the files next to it.
"""
from __future__ import annotations

import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SEED = 20240607
N_DOCS = 150
FIRST_PMID = 90000001
HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------
# Lexicon: drug -> (indication, typical doses, plausible adverse effects)
# --------------------------------------------------------------------------------------------
DRUGS: dict[str, tuple[str, list[str], list[str]]] = {
    "clozapine": ("treatment-resistant schizophrenia", ["300 mg daily", "100 mg twice daily"],
                  ["agranulocytosis", "myocarditis", "seizures", "neuroleptic malignant syndrome"]),
    "carbamazepine": ("trigeminal neuralgia", ["400 mg twice daily", "200 mg daily"],
                      ["Stevens-Johnson syndrome", "hyponatremia", "aplastic anemia",
                       "drug reaction with eosinophilia and systemic symptoms"]),
    "valproic acid": ("generalized epilepsy", ["500 mg daily", "20 mg/kg per day"],
                      ["hyperammonemia", "acute pancreatitis", "hepatotoxicity", "thrombocytopenia",
                       "encephalopathy"]),
    "lamotrigine": ("bipolar disorder", ["25 mg daily", "100 mg twice daily"],
                    ["toxic epidermal necrolysis", "Stevens-Johnson syndrome", "aseptic meningitis"]),
    "phenytoin": ("focal seizures", ["300 mg daily", "100 mg three times daily"],
                  ["gingival hyperplasia", "cerebellar atrophy", "purple glove syndrome"]),
    "lithium": ("bipolar disorder", ["900 mg daily", "300 mg three times daily"],
                ["nephrogenic diabetes insipidus", "hypothyroidism", "hypercalcemia"]),
    "haloperidol": ("agitated delirium", ["5 mg intramuscularly", "2 mg every 6 hours"],
                    ["acute dystonia", "neuroleptic malignant syndrome", "QT prolongation",
                     "torsades de pointes"]),
    "olanzapine": ("schizophrenia", ["10 mg daily", "20 mg at bedtime"],
                   ["diabetic ketoacidosis", "marked weight gain", "hyperglycemia"]),
    "risperidone": ("autism-related irritability", ["2 mg daily", "1 mg twice daily"],
                    ["hyperprolactinemia", "gynecomastia", "priapism"]),
    "fluoxetine": ("major depression", ["20 mg daily", "40 mg daily"],
                   ["serotonin syndrome", "hyponatremia", "mania"]),
    "sertraline": ("panic disorder", ["50 mg daily", "100 mg daily"],
                   ["serotonin syndrome",
                    "syndrome of inappropriate antidiuretic hormone secretion"]),
    "bupropion": ("smoking cessation", ["150 mg twice daily", "300 mg daily"],
                  ["seizures", "acute hepatitis"]),
    "amiodarone": ("paroxysmal atrial fibrillation", ["200 mg daily", "400 mg daily"],
                   ["pulmonary fibrosis", "hyperthyroidism", "optic neuropathy",
                    "interstitial pneumonitis"]),
    "digoxin": ("congestive heart failure", ["0.25 mg daily", "0.125 mg daily"],
                ["complete heart block", "xanthopsia", "bidirectional ventricular tachycardia"]),
    "warfarin": ("deep venous thrombosis", ["5 mg daily", "7.5 mg daily"],
                 ["skin necrosis", "intracerebral hemorrhage", "purple toe syndrome"]),
    "heparin": ("pulmonary embolism", ["5000 units subcutaneously", "18 units/kg per hour"],
                ["hyperkalemia", "osteoporosis"]),
    "enoxaparin": ("thromboprophylaxis", ["40 mg subcutaneously daily", "1 mg/kg twice daily"],
                   ["retroperitoneal hematoma", "spinal epidural hematoma"]),
    "amlodipine": ("essential hypertension", ["10 mg daily", "5 mg daily"],
                   ["gingival hyperplasia", "peripheral edema"]),
    "lisinopril": ("hypertension", ["10 mg daily", "20 mg daily"],
                   ["angioedema", "hyperkalemia", "persistent dry cough"]),
    "metoprolol": ("ischemic heart disease", ["50 mg twice daily", "100 mg daily"],
                   ["symptomatic bradycardia", "complete heart block"]),
    "spironolactone": ("resistant hypertension", ["25 mg daily", "50 mg daily"],
                       ["hyperkalemia", "gynecomastia"]),
    "hydrochlorothiazide": ("hypertension", ["25 mg daily", "12.5 mg daily"],
                            ["hyponatremia", "photosensitivity", "acute angle-closure glaucoma"]),
    "simvastatin": ("hypercholesterolemia", ["40 mg daily", "80 mg daily"],
                    ["rhabdomyolysis", "necrotizing myopathy", "acute renal failure"]),
    "metformin": ("type 2 diabetes mellitus", ["850 mg twice daily", "1000 mg twice daily"],
                  ["lactic acidosis", "vitamin B12 deficiency"]),
    "insulin glargine": ("type 1 diabetes mellitus", ["20 units at bedtime", "30 units daily"],
                         ["severe hypoglycemia", "lipohypertrophy"]),
    "glipizide": ("type 2 diabetes", ["5 mg daily", "10 mg twice daily"],
                  ["severe hypoglycemia", "hemolytic anemia"]),
    "prednisone": ("giant cell arteritis", ["60 mg daily", "40 mg daily"],
                   ["avascular necrosis of the femoral head", "hyperglycemia", "acute psychosis"]),
    "methotrexate": ("rheumatoid arthritis", ["15 mg weekly", "7.5 mg weekly"],
                     ["pancytopenia", "oral mucositis", "hepatic fibrosis"]),
    "azathioprine": ("Crohn's disease", ["100 mg daily", "2 mg/kg daily"],
                     ["acute pancreatitis", "leukopenia", "hepatic veno-occlusive disease"]),
    "cyclosporine": ("renal transplantation", ["150 mg twice daily", "5 mg/kg per day"],
                     ["posterior reversible encephalopathy syndrome", "nephrotoxicity",
                      "hypertrichosis"]),
    "tacrolimus": ("liver transplantation", ["2 mg twice daily", "0.1 mg/kg per day"],
                   ["posterior reversible encephalopathy syndrome", "new-onset diabetes mellitus",
                    "disabling tremor"]),
    "mycophenolate mofetil": ("lupus nephritis", ["1 g twice daily", "500 mg twice daily"],
                              ["severe colitis", "pure red cell aplasia"]),
    "infliximab": ("ulcerative colitis", ["5 mg/kg", "10 mg/kg"],
                   ["reactivation of tuberculosis", "lupus-like syndrome", "psoriasiform eruption"]),
    "rituximab": ("follicular lymphoma", ["375 mg/m2", "1000 mg"],
                  ["progressive multifocal leukoencephalopathy", "late-onset neutropenia",
                   "hepatitis B reactivation"]),
    "cisplatin": ("testicular cancer", ["75 mg/m2", "100 mg/m2"],
                  ["ototoxicity", "acute renal failure", "hypomagnesemia", "peripheral neuropathy"]),
    "5-fluorouracil": ("metastatic colorectal cancer", ["400 mg/m2", "2400 mg/m2 over 46 hours"],
                       ["coronary vasospasm", "hand-foot syndrome", "hyperammonemic encephalopathy"]),
    "6-mercaptopurine": ("acute lymphoblastic leukemia", ["75 mg/m2 daily", "50 mg daily"],
                         ["cholestatic hepatitis", "acute pancreatitis"]),
    "doxorubicin": ("breast cancer", ["60 mg/m2", "50 mg/m2"],
                    ["dilated cardiomyopathy", "congestive heart failure"]),
    "bleomycin": ("Hodgkin lymphoma", ["10 units/m2", "30 units weekly"],
                  ["pulmonary fibrosis", "flagellate erythema"]),
    "cyclophosphamide": ("ANCA-associated vasculitis", ["750 mg/m2", "2 mg/kg daily"],
                         ["hemorrhagic cystitis", "hyponatremia"]),
    "vincristine": ("acute lymphoblastic leukemia", ["1.4 mg/m2", "2 mg"],
                    ["peripheral neuropathy", "paralytic ileus",
                     "syndrome of inappropriate antidiuretic hormone secretion"]),
    "paclitaxel": ("ovarian cancer", ["175 mg/m2", "80 mg/m2 weekly"],
                   ["anaphylaxis", "peripheral neuropathy", "cystoid macular edema"]),
    "all-trans retinoic acid": ("acute promyelocytic leukemia", ["45 mg/m2 daily"],
                                ["differentiation syndrome", "pseudotumor cerebri"]),
    "interferon alfa-2b": ("chronic hepatitis C", ["3 million units three times weekly"],
                           ["severe depression", "autoimmune thyroiditis", "retinopathy"]),
    "vancomycin": ("methicillin-resistant Staphylococcus aureus bacteremia",
                   ["1 g every 12 hours", "15 mg/kg every 12 hours"],
                   ["red man syndrome", "linear IgA bullous dermatosis",
                    "acute interstitial nephritis"]),
    "gentamicin": ("Gram-negative sepsis", ["5 mg/kg daily", "80 mg every 8 hours"],
                   ["ototoxicity", "acute tubular necrosis", "vestibular toxicity"]),
    "ciprofloxacin": ("urinary tract infection", ["500 mg twice daily", "400 mg intravenously"],
                      ["Achilles tendon rupture", "QT prolongation", "seizures",
                       "severe hypoglycemia"]),
    "levofloxacin": ("community-acquired pneumonia", ["750 mg daily", "500 mg daily"],
                     ["tendon rupture", "delirium", "severe hypoglycemia"]),
    "trimethoprim-sulfamethoxazole": ("Pneumocystis pneumonia prophylaxis",
                                      ["one double-strength tablet daily"],
                                      ["hyperkalemia", "Stevens-Johnson syndrome",
                                       "aseptic meningitis"]),
    "amoxicillin-clavulanate": ("acute sinusitis", ["875 mg twice daily"],
                                ["cholestatic hepatitis",
                                 "acute generalized exanthematous pustulosis"]),
    "ceftriaxone": ("bacterial meningitis", ["2 g daily", "2 g every 12 hours"],
                    ["biliary pseudolithiasis", "immune hemolytic anemia"]),
    "linezolid": ("vertebral osteomyelitis", ["600 mg twice daily"],
                  ["lactic acidosis", "optic neuropathy", "serotonin syndrome", "thrombocytopenia"]),
    "isoniazid": ("latent tuberculosis", ["300 mg daily", "900 mg twice weekly"],
                  ["fulminant hepatic failure", "peripheral neuropathy"]),
    "rifampicin": ("pulmonary tuberculosis", ["600 mg daily", "450 mg daily"],
                   ["acute renal failure", "thrombocytopenia"]),
    "metronidazole": ("Clostridium difficile colitis", ["500 mg three times daily"],
                      ["cerebellar toxicity", "peripheral neuropathy", "disulfiram-like reaction"]),
    "acyclovir": ("herpes zoster", ["10 mg/kg every 8 hours", "800 mg five times daily"],
                  ["acute renal failure", "neurotoxicity"]),
    "zidovudine": ("HIV infection", ["300 mg twice daily"],
                   ["mitochondrial myopathy", "macrocytic anemia"]),
    "ibuprofen": ("osteoarthritis", ["800 mg three times daily", "400 mg as needed"],
                  ["aseptic meningitis", "acute interstitial nephritis",
                   "upper gastrointestinal bleeding"]),
    "naproxen": ("ankylosing spondylitis", ["500 mg twice daily"],
                 ["pseudoporphyria", "perforated duodenal ulcer"]),
    "acetaminophen": ("chronic back pain", ["4 g daily", "1 g every 6 hours"],
                      ["fulminant hepatic failure"]),
    "allopurinol": ("chronic gout", ["300 mg daily", "100 mg daily"],
                    ["toxic epidermal necrolysis",
                     "drug reaction with eosinophilia and systemic symptoms"]),
    "propylthiouracil": ("Graves' disease", ["100 mg three times daily"],
                         ["agranulocytosis", "ANCA-associated vasculitis"]),
    "tramadol": ("postoperative pain", ["50 mg every 6 hours", "100 mg twice daily"],
                 ["serotonin syndrome", "seizures", "severe hypoglycemia"]),
    "morphine": ("cancer pain", ["10 mg every 4 hours", "30 mg twice daily"],
                 ["respiratory depression", "multifocal myoclonus"]),
    "metoclopramide": ("diabetic gastroparesis", ["10 mg three times daily"],
                       ["tardive dyskinesia", "acute dystonia"]),
    "omeprazole": ("gastroesophageal reflux disease", ["20 mg daily", "40 mg twice daily"],
                   ["hypomagnesemia", "acute interstitial nephritis"]),
    "propofol": ("sedation after cardiac surgery", ["4 mg/kg per hour"],
                 ["acute pancreatitis", "green urine"]),
    "bevacizumab": ("glioblastoma", ["10 mg/kg every 2 weeks", "5 mg/kg"],
                    ["gastrointestinal perforation",
                     "posterior reversible encephalopathy syndrome"]),
    "zoledronic acid": ("osteoporosis", ["5 mg intravenously", "4 mg every 4 weeks"],
                        ["osteonecrosis of the jaw", "anterior uveitis"]),
    "isotretinoin": ("nodular acne", ["40 mg daily", "0.5 mg/kg per day"],
                     ["severe depression", "pseudotumor cerebri"]),
    "minocycline": ("acne vulgaris", ["100 mg twice daily"],
                    ["lupus-like syndrome", "blue-gray skin hyperpigmentation"]),
}

# Adverse effects that contain the drug's name; the drug is annotated inside the AE span.
NESTED = {
    "heparin": ["heparin-induced thrombocytopenia"],
    "lithium": ["lithium toxicity"],
    "digoxin": ["digoxin toxicity"],
    "methotrexate": ["methotrexate pneumonitis"],
    "propofol": ["propofol infusion syndrome"],
    "warfarin": ["warfarin-induced skin necrosis"],
}

# drugs for which about half the patients are children
PEDIATRIC = {"valproic acid", "risperidone", "6-mercaptopurine", "vincristine", "ceftriaxone",
             "isotretinoin", "acyclovir"}

# indications that fix the patient's sex (True: female)
SEX_OF = {"ovarian cancer": True, "breast cancer": True, "lupus nephritis": True,
          "testicular cancer": False}

ENTITY_ROLES = {"drug", "drug2", "ae", "ae2", "dose", "nested"}
AE_ROLES = ("ae", "ae2")
DRUG_ROLES = ("drug", "drug2")

# --------------------------------------------------------------------------------------------
# Templates.  {role} is an annotated mention, {role~} the same text left unannotated, a capital
# first letter ({Drug}, {Ae}) capitalises the value.  Relations are every AE role x every drug
# role that is annotated in the sentence; a dose always belongs to {drug}.
# --------------------------------------------------------------------------------------------
TITLE_ADE = {
    "single": [
        "{Ae} associated with {drug} therapy.",
        "{Ae} during treatment with {drug}: a case report.",
        "{Ae} in a patient receiving {drug}.",
        "{Ae} after {drug} in {a} {age}-year-old {sex}.",
        "{Ae} as a late complication of {drug}.",
        "Fatal {ae} following {drug} administration.",
        "Recurrent {ae} on rechallenge with {drug}.",
    ],
    "hyphen": [
        "{Drug}-induced {ae}.",
        "{Drug}-induced {ae}: report of two cases.",
        "{Drug}-associated {ae} in {a} {age}-year-old {sex}.",
        "Severe {drug}-related {ae}.",
    ],
    "two_drugs": [
        "{Ae} associated with {drug} and {drug2}.",
        "{Ae} after the combination of {drug} and {drug2}.",
    ],
    "two_aes": [
        "{Ae} and {ae2} during {drug} treatment.",
        "{Drug}-induced {ae} and {ae2}.",
    ],
    "nested": [
        "{Nested} in {a} {age}-year-old {sex}: a case report.",
        "{Nested} presenting with unusual features.",
    ],
}

TITLE_NEG = [
    "An unusual cause of {ae~}: a case report.",
    "Adverse drug reactions in clinical practice: lessons from a single case.",
    "Diagnostic pitfalls in a patient with {ind}.",
    "Drug-related problems in {ind}: a case report and review of the literature.",
    "When the treatment is the disease: a case report.",
]

ADE = {
    "single": [
        "{A} {age}-year-old {sex} developed {ae} {n} days after starting {drug} for {ind}.",
        "We describe {a} {age}-year-old {sex} with {ind} who developed {ae} while receiving {drug}.",
        "{Ae} occurred {n} weeks after the initiation of {drug} therapy.",
        "The temporal relationship suggested that {drug} was responsible for the {ae}.",
        "To our knowledge, this is the first report of {ae} associated with {drug}.",
        "{Ae} is a rare but potentially fatal complication of {drug} treatment.",
        "Clinicians should be aware that {drug} may cause {ae}, even at therapeutic doses.",
        "On day {n} of {drug} treatment, the patient presented with {ae}.",
        "Rechallenge with {drug} led to recurrence of {ae} within {n} hours.",
        "The {ae} was attributed to {drug} after other causes had been excluded.",
        "{Pron} was readmitted with {ae} {n} weeks after {drug} had been prescribed.",
        "We report a case of {ae} probably caused by {drug}.",
        "Biopsy findings were consistent with {ae} secondary to {drug}.",
        "{Ae} resolved only after {drug} was withdrawn, supporting a causal role.",
        "The Naranjo score indicated that {drug} was a probable cause of the {ae}.",
    ],
    "hyphen": [
        "{Drug}-induced {ae} was diagnosed on the basis of the clinical course.",
        "This is the {nth} reported case of {drug}-associated {ae}.",
        "The differential diagnosis included sepsis and {drug}-induced {ae}.",
        "{Pron} was treated for presumed {drug}-related {ae} with supportive care.",
        "The mechanism of {drug}-induced {ae} remains unclear.",
    ],
    "dose": [
        "{A} {age}-year-old {sex} receiving {drug} {dose} for {ind} developed {ae}.",
        "Within {n} days of increasing {drug} to {dose}, {pron} developed {ae}.",
        "{Ae} developed {n} days after {drug} ({dose}) was started.",
        "The patient had been treated with {drug}, {dose}, and presented with {ae} {n} weeks later.",
        "{Ae} appeared shortly after {drug} was started at {dose}.",
    ],
    "two_drugs": [
        "We report {ae} in a patient treated concurrently with {drug} and {drug2}.",
        "{Ae} developed after {drug2} was added to a regimen containing {drug}.",
        "Both {drug} and {drug2} have been implicated in {ae}, and both were stopped.",
        "{Ae} was attributed to the combined use of {drug} and {drug2}.",
    ],
    "two_aes": [
        "Shortly after starting {drug}, the patient developed {ae} and {ae2}.",
        "{Drug} therapy was complicated by {ae} and, later, {ae2}.",
        "The clinical picture included {ae} and {ae2}, which were attributed to {drug}.",
    ],
    "two_two": [
        "Combined treatment with {drug} and {drug2} was followed by {ae} and {ae2}.",
    ],
    "drug_twice": [
        # the second occurrence is the annotated one
        "{Drug~} had been well tolerated for {n} years, but {ae} developed when {drug} was "
        "restarted at a higher dose.",
        "Low-dose {drug~} had caused no problems; {ae} appeared only after {drug} was escalated.",
        "Because {drug~} levels were subtherapeutic, the dose was doubled, and {ae} followed the "
        "second course of {drug}.",
    ],
    "drug_twice_first": [
        # the first occurrence is the annotated one
        "{Drug}-associated {ae} resolved within days, and {drug~} was not reintroduced.",
        "After {drug} was stopped the {ae} improved, but {drug~} was later resumed without harm.",
    ],
    "ae_twice": [
        # the second occurrence of the adverse effect is the annotated one
        "Although {pron} had no previous history of {ae~}, {ae} developed {n} days after {drug} "
        "was started.",
        "Other causes of {ae~} were excluded, and the {ae} was attributed to {drug}.",
    ],
    "nested": [
        "We describe {a} {age}-year-old {sex} who developed {nested} during treatment for {ind}.",
        "{Nested} was diagnosed on hospital day {n}.",
        "The clinical and laboratory findings were consistent with {nested}.",
        "{Nested} should be considered in any patient with unexplained deterioration.",
    ],
}

NEG = {
    "background": [
        "{Ae~} is an uncommon condition with a broad differential diagnosis.",
        "The pathogenesis of {ae~} remains poorly understood.",
        "{Drug~} is widely used in the treatment of {ind}.",
        "{Drug~} is generally considered safe and well tolerated.",
        "{Ind} frequently requires long-term pharmacological treatment.",
        "Several mechanisms have been proposed, including immune-mediated and direct toxic injury.",
        "Adverse drug reactions account for a substantial proportion of hospital admissions.",
        "Few cases have been described in patients older than {age} years.",
    ],
    "case": [
        "{A} {age}-year-old {sex} with a history of {ind} was admitted to our hospital.",
        "The patient had been taking {drug~} {dose~} for {ind} for {n} months.",
        "{Poss} past medical history was notable for {ind}.",
        "There was no history of alcohol use, liver disease or recent travel.",
        "{Pron} was started on {drug~} {dose~} after an episode of {ind}.",
        "{Poss} medical history included hypertension and hypothyroidism.",
        "{A} {age}-year-old {sex} presented to the emergency department with fatigue.",
    ],
    "lab": [
        "Laboratory tests showed a serum creatinine of {cr} mg/dL and a platelet count of "
        "{plt} x 10(9)/L.",
        "Physical examination revealed a temperature of {temp} degrees C and a heart rate of "
        "{hr} beats/min.",
        "Serum sodium was {na} mmol/L and serum potassium was {k} mmol/L.",
        "Blood cultures and viral serologies were negative.",
        "An electrocardiogram showed sinus rhythm with a QTc interval of {qtc} ms.",
        "Magnetic resonance imaging of the brain was unremarkable.",
    ],
    "outcome": [
        "After discontinuation of {drug~}, the patient recovered completely within {n} weeks.",
        "Symptoms resolved within {n} days without specific treatment.",
        "The patient was discharged on hospital day {n} in good condition.",
        "At follow-up {n} months later, {pron} remained asymptomatic.",
        "{Drug~} was discontinued and an alternative agent was introduced without further "
        "complications.",
        "Treatment with intravenous fluids and supportive care was started.",
        "{Pron} required admission to the intensive care unit for {n} days.",
    ],
    "conclusion": [
        "Early recognition and prompt withdrawal of the offending agent are essential.",
        "Careful monitoring is recommended in patients with {ind}.",
        "Physicians prescribing {drug~} should inform patients about warning symptoms.",
        "Further studies are needed to clarify the underlying mechanism.",
        "A search of MEDLINE identified {n} similar cases published since {year}.",
    ],
}

SECTION = {"background": "BACKGROUND: ", "case": "CASE REPORT: ", "lab": "RESULTS: ",
           "outcome": "RESULTS: ", "conclusion": "CONCLUSIONS: "}

ORDINALS = ["second", "third", "fourth", "fifth", "sixth", "seventh"]
PLACEHOLDER = re.compile(r"\{(\w+)(~?)\}")


@dataclass
class Sentence:
    text: str
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # sentence-level
    relations: list[tuple[str, str]] = field(default_factory=list)    # (ae role, drug role)
    dose: bool = False


@dataclass
class Document:
    pmid: str
    sentences: list[Sentence]

    @property
    def text(self) -> str:
        title, *abstract = [s.text for s in self.sentences]
        return self.pmid + "\n\n" + title + "\n\n" + " ".join(abstract)

    def starts(self) -> list[int]:
        """Document-level start of every sentence."""
        pos = len(self.pmid) + 2
        out = [pos]
        pos += len(self.sentences[0].text) + 2
        for s in self.sentences[1:]:
            out.append(pos)
            pos += len(s.text) + 1
        return out


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def render(template: str, values: dict[str, str], prefix: str = "") -> Sentence:
    """Fill ``template``; record sentence-level spans of the annotated entity placeholders."""
    out, spans, pos, last = [prefix], {}, len(prefix), 0
    for m in PLACEHOLDER.finditer(template):
        lit = template[last:m.start()]
        out.append(lit)
        pos += len(lit)
        name, plain = m.group(1), m.group(2) == "~"
        role = name[:1].lower() + name[1:]
        value = values[role]
        if name[:1].isupper():
            value = cap(value)
        if role in ENTITY_ROLES and not plain:
            if role in spans:
                raise ValueError(f"{role} annotated twice in {template!r}")
            if role == "nested":
                inner = values["nested_drug"]
                i = value.lower().index(inner.lower())
                spans["ae"] = (pos, pos + len(value))
                spans["drug"] = (pos + i, pos + i + len(inner))
            else:
                spans[role] = (pos, pos + len(value))
        out.append(value)
        pos += len(value)
        last = m.end()
    out.append(template[last:])
    text = "".join(out)
    relations = [(a, d) for a in AE_ROLES if a in spans for d in DRUG_ROLES if d in spans]
    return Sentence(text, spans, relations, dose="dose" in spans)


class Generator:
    def __init__(self, seed: int = SEED):
        self.rng = random.Random(seed)
        self.seen: set[str] = set()
        self.by_ae: dict[str, list[str]] = {}
        for drug, (_, _, aes) in DRUGS.items():
            for ae in aes:
                self.by_ae.setdefault(ae, []).append(drug)
        # cycle through every drug and every (drug, AE) pair so the whole lexicon is used
        self.drug_queue: list[str] = []
        self.ae_queue: dict[str, list[str]] = {d: [] for d in DRUGS}
        self.used: set[tuple[str, str]] = set()  # (drug, AE) pairs already in a relation

    def next_drug(self) -> str:
        if not self.drug_queue:
            self.drug_queue = list(DRUGS)
            self.rng.shuffle(self.drug_queue)
            # drugs with adverse effects not yet used come first (the queue pops from the end)
            self.drug_queue.sort(key=lambda d: sum((d, a) not in self.used for a in DRUGS[d][2]))
        return self.drug_queue.pop()

    def next_ae(self, drug: str, avoid: tuple[str, ...] = ()) -> str:
        q = self.ae_queue[drug]
        for _ in range(2):
            if not q:
                q.extend(DRUGS[drug][2])
                self.rng.shuffle(q)
            for i, ae in enumerate(q):
                if ae not in avoid:
                    return q.pop(i)
            q.clear()
        return self.rng.choice([a for a in DRUGS[drug][2] if a not in avoid] or DRUGS[drug][2])

    def partner(self, drug: str, ae: str) -> str:
        """A second drug for a two-drug sentence, preferably one known for the same AE."""
        cands = [d for d in self.by_ae.get(ae, []) if d != drug]
        if cands and self.rng.random() < 0.8:
            return self.rng.choice(cands)
        return self.rng.choice([d for d in DRUGS if d != drug])

    def values(self, doc: dict) -> dict[str, str]:
        r = self.rng
        v = dict(doc)
        v.update(
            n=str(r.randint(2, 14)),
            nth=r.choice(ORDINALS), year=str(r.randint(1975, 2005)),
            cr=f"{r.uniform(0.6, 6.5):.1f}", plt=str(r.randint(8, 420)),
            temp=f"{r.uniform(36.5, 40.2):.1f}", hr=str(r.randint(48, 142)),
            na=str(r.randint(112, 146)), k=f"{r.uniform(2.9, 7.4):.1f}",
            qtc=str(r.randint(410, 620)),
        )
        return v

    def make(self, pool: list[str], doc: dict, extra: dict | None = None,
             prefix: str = "") -> Sentence:
        for _ in range(200):
            v = self.values(doc)
            if extra:
                v.update(extra)
            s = render(self.rng.choice(pool), v, prefix)
            if s.text not in self.seen and "|" not in s.text:
                self.seen.add(s.text)
                return s
        raise RuntimeError(f"could not make a fresh sentence from {pool[:1]}")

    def ade_sentence(self, kind: str, doc: dict, title: bool = False,
                     prefix: str = "") -> Sentence:
        drug = doc["drug"]
        extra: dict[str, str] = {}
        if kind == "nested":
            nested = self.rng.choice(NESTED[drug])
            extra.update(nested=nested, nested_drug=drug)
        else:
            ae = doc["ae"] if title else self.next_ae(drug)
            extra["ae"] = ae
            if kind in ("two_aes", "two_two"):
                extra["ae2"] = self.next_ae(drug, avoid=(ae,))
            if kind in ("two_drugs", "two_two"):
                extra["drug2"] = self.partner(drug, ae)
        pool = (TITLE_ADE if title else ADE)[kind]
        sentence = self.make(pool, doc, extra, prefix)
        drugs = [drug] + ([extra["drug2"]] if "drug2" in extra else [])
        self.used.update((d, extra[a]) for d in drugs for a in AE_ROLES if a in extra)
        return sentence

    def document(self, index: int) -> Document:
        r = self.rng
        drug = self.next_drug()
        ind, doses, _ = DRUGS[drug]
        pediatric = drug in PEDIATRIC and r.random() < 0.5
        age = r.randint(3, 15) if pediatric else r.randint(18, 89)
        female = SEX_OF.get(ind, r.random() < 0.5)
        sex = ("girl" if female else "boy") if age < 16 else ("woman" if female else "man")
        article = "an" if str(age)[0] == "8" or age in (11, 18) else "a"
        doc = dict(drug=drug, ind=ind, dose=r.choice(doses), age=str(age), sex=sex, a=article,
                   pron="she" if female else "he", poss="her" if female else "his",
                   ae=self.next_ae(drug))
        has_nested = drug in NESTED

        sentences: list[Sentence] = []
        # title: mostly an ADE, sometimes a neutral (NEG) one
        if r.random() < 0.75:
            kinds = ["single"] * 5 + ["hyphen"] * 3 + ["two_drugs", "two_aes"]
            if has_nested:
                kinds += ["nested"] * 6
            sentences.append(self.ade_sentence(r.choice(kinds), doc, title=True))
        else:
            sentences.append(self.make(TITLE_NEG, doc))
            self.ae_queue[drug].insert(0, doc["ae"])  # not used in a relation: draw it again

        n = r.randint(3, 7)
        n_ade = max(1, min(n - 1, round(n * r.uniform(0.15, 0.35))))
        structured = r.random() < 0.25
        neg_kinds = ["background", "case", "lab", "outcome", "conclusion"]
        chosen = sorted(r.sample(neg_kinds, min(n - n_ade, 5)), key=neg_kinds.index)
        while len(chosen) < n - n_ade:
            chosen.insert(r.randint(1, len(chosen)), r.choice(["lab", "outcome"]))

        ade_kinds = (["single"] * 8 + ["hyphen"] * 3 + ["dose"] * 4 + ["two_drugs"] * 2
                     + ["two_aes"] * 2 + ["two_two"] * 1 + ["drug_twice"] + ["drug_twice_first"]
                     + ["ae_twice"])
        if has_nested:
            ade_kinds += ["nested"] * 10
        # in a structured abstract without a case sentence the first ADE sentence opens the case
        first_label = SECTION["case"] if structured and "case" not in chosen else ""
        ade = [self.ade_sentence(r.choice(ade_kinds), doc, prefix=first_label if j == 0 else "")
               for j in range(n_ade)]

        # order: background/case first, then the ADE sentences, then lab/outcome/conclusion
        head = [k for k in chosen if k in ("background", "case")]
        tail = [k for k in chosen if k not in ("background", "case")]
        abstract: list[Sentence] = []
        used: set[str] = {first_label}

        def neg(k: str) -> Sentence:
            label = SECTION[k] if structured and SECTION[k] not in used else ""
            used.add(label)
            return self.make(NEG[k], doc, prefix=label)

        abstract.extend(neg(k) for k in head)
        insert_at = len(abstract)
        abstract.extend(neg(k) for k in tail)
        # the ADE sentences follow the case description; a later one may sit among the results
        for j, s in enumerate(ade):
            pos = insert_at + j
            if j and r.random() < 0.4:
                pos = r.randint(insert_at + j, len(abstract))
            abstract.insert(pos, s)
        sentences.extend(abstract)
        return Document(str(FIRST_PMID + index), sentences)


def build_corpus(n_docs: int = N_DOCS, seed: int = SEED) -> list[Document]:
    g = Generator(seed)
    return [g.document(i) for i in range(n_docs)]


def lines(docs: list[Document]) -> tuple[list[str], list[str], list[str]]:
    ae_lines, dose_lines, neg_lines = [], [], []
    for doc in docs:
        for s, start in zip(doc.sentences, doc.starts()):
            def off(role: str) -> tuple[str, int, int]:
                b, e = s.spans[role]
                return s.text[b:e], start + b, start + e

            if not s.relations:
                neg_lines.append(f"{doc.pmid} NEG {s.text}")
                continue
            for a, d in s.relations:
                am, ab, ae = off(a)
                dm, db, de = off(d)
                ae_lines.append(f"{doc.pmid}|{s.text}|{am}|{ab}|{ae}|{dm}|{db}|{de}")
            if s.dose:
                qm, qb, qe = off("dose")
                dm, db, de = off("drug")
                dose_lines.append(f"{doc.pmid}|{s.text}|{qm}|{qb}|{qe}|{dm}|{db}|{de}")
    return ae_lines, dose_lines, neg_lines


def main(out_dir: Path = HERE) -> None:
    docs = build_corpus()
    ae_lines, dose_lines, neg_lines = lines(docs)
    for name, rows in (("DRUG-AE.rel", ae_lines), ("DRUG-DOSE.rel", dose_lines),
                       ("ADE-NEG.txt", neg_lines)):
        with open(out_dir / name, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(r + "\n" for r in rows))
    print(f"{len(docs)} documents; DRUG-AE.rel {len(ae_lines)} lines, DRUG-DOSE.rel "
          f"{len(dose_lines)} lines, ADE-NEG.txt {len(neg_lines)} lines", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
