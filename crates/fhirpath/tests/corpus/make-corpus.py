#!/usr/bin/env python3
"""Writes expressions.json: the FHIRPath oracle corpus over the DDCC IG examples.

Each entry: id, resource (file under ddcc-ig/examples/), expression, optional vars.
Edit the lists below and re-run; ids are stable per (resource, expression).
"""
import json, os

P = "Patient-DDCCPatientEnglish.json"
PZ = "Patient-DDCCPatientChinese.json"
PA = "Patient-DDCCPatientArabic.json"
I = "Immunization-DDCCImmunizationEnglish.json"
Q = "QuestionnaireResponse-DDCCVSQuestionnaireResponseExample.json"
QF = "QuestionnaireResponse-DDCCVSQuestionnaireResponseFrench.json"
B = "Bundle-ExampleEnglish.json"
C = "Composition-DDCCCompositionExampleEnglish.json"
O = "Organization-DDCCOrganizationEnglish.json"
R = "ImmunizationRecommendation-DDCCImmunizationRecommendationEnglish.json"

def ans(link):
    return f"item.where(linkId = '{link}').answer.value"

E = []
def add(res, *exprs, vars=None):
    for e in exprs:
        entry = {"resource": res, "expression": e}
        if vars:
            entry["vars"] = vars
        E.append(entry)

# --- paths, choice types, indexers, type names -------------------------------
add(P, "Patient", "Patient.id", "id", "name", "name.text", "Patient.name.use", "birthDate",
    "name[0].text", "name[1]", "meta.profile", "meta.profile[0]", "Observation", "Patient.Patient",
    "text.status", "name.given", "`name`.`text`", "Patient.name.`use`", "{}", "identifier.value")
add(I, "status", "vaccineCode.coding.code", "vaccineCode.coding.system", "occurrence",
    "occurrenceDateTime", "Immunization.occurrence", "protocolApplied.doseNumber",
    "protocolApplied.seriesDoses", "protocolApplied.doseNumberPositiveInt",
    "extension.value", "extension.value.code", "extension.url", "extension[1].value",
    "extension.valueCoding.code", "extension.value.ofType(Coding).code",
    "extension.value.ofType(code)", "extension.value.ofType(date)", "extension.value.ofType(string)",
    "performer.actor.reference", "patient.reference", "lotNumber", "expirationDate",
    "location.display", "protocolApplied.targetDisease.coding.code", "meta")
add(Q, "item.linkId", "item.answer.value", "item.answer.value.code", "item.answer.value.ofType(Coding).code",
    "item.answer.value.ofType(date)", "item.answer.value.ofType(integer)", "item.answer.value.ofType(string)",
    ans("name"), ans("birthDate"), ans("dose"), ans("total_doses"), ans("vaccine") + ".code",
    ans("vaccine") + ".system", ans("date"), ans("lot"), ans("hcid"), "item.count()", "item[3].answer.value.code",
    "authored", "subject.reference", "questionnaire", "status", "item.answer.valueInteger",
    "item.answer.valueDate", "item.where(linkId = 'dose').answer.value + 1")
add(B, "entry.resource.resourceType", "entry.resource.id", "entry.fullUrl", "type", "timestamp",
    "entry.resource.ofType(Patient).name.text", "entry.resource.ofType(Immunization).status",
    "entry.resource.ofType(Composition).section.entry.reference", "entry.count()",
    "entry.resource.where(resourceType = 'Organization').name", "entry[0].resource.title",
    "entry.resource.ofType(Resource).count()", "entry.resource.ofType(DomainResource).id",
    "entry.resource.ofType(Immunization).occurrence", "identifier.value", "link.relation",
    "entry.resource.select(resourceType + '/' + id)")
add(C, "title", "status", "date", "type.coding.code", "section.entry.reference", "attester.mode",
    "author.reference", "section.code.coding.code", "identifier.system", "subject.reference",
    "section.focus.reference")
add(O, "name", "name.length()", "name.upper()", "name.lower()", "id.substring(4)", "name.toChars().count()")
add(R, "recommendation.dateCriterion.value", "recommendation.forecastStatus.coding.code",
    "recommendation.vaccineCode.coding.code", "date", "recommendation.supportingImmunization.reference",
    "recommendation.dateCriterion.value > @2021-05-01", "recommendation.dateCriterion.value.toDate()")

# --- literals ------------------------------------------------------------------
add(P, "true", "false", "1", "-1", "0", "1.5", "-1.50", "1.0", "2147483647", "'abc'", "'a\\'b'",
    "'tab\\there'", "'\\u0041BC'", "'quote\\\"d'", "'back\\\\slash'", "@2021", "@2021-07", "@2021-07-08",
    "@2021-07-08T10:30", "@2021-07-08T10:30:15", "@2021-07-08T10:30:15.123", "@2021-07-08T10:30:15Z",
    "@2021-07-08T10:30:15+02:00", "@T10:30", "@T10:30:15.5", "5 'mg'", "4 days", "1 year", "2.5 'kg'",
    "10 'mm[Hg]'", "1 week", "3 months", "(1 | 2 | 3)", "1 | 1", "{}.count()", "10L", "@2021-07-08T")

# --- arithmetic, concatenation, precedence -------------------------------------
add(P, "1 + 2", "1 + 2 * 3", "(1 + 2) * 3", "10 - 4 - 3", "7 / 2", "7 div 2", "7 mod 2", "-7 div 2",
    "-7 mod 2", "7.5 div 2", "7.5 mod 2", "1 / 0", "1 div 0", "1 mod 0", "1.1 + 2.2", "0.1 * 3",
    "2 * 2.5", "10 / 4", "6 / 3", "1.0 / 3", "'a' + 'b'", "'a' & 'b'", "'a' & {}", "{} & 'b'",
    "'a' + {}", "1 + {}", "-(3)", "-(1.5)", "- 2 + 5", "2 * -3", "(2 + 3).toString()",
    "9223372036854775807 + 0", "5 'mg' + 3 'mg'", "5 'mg' * 2", "(2 'mg' * 2 'mg').toString()",
    "1 + 2 = 3", "2 + 3 * 4 - 1 = 13", "name.text + ' X'", "birthDate.toString() & '!'")

# --- comparison and equality -----------------------------------------------------
add(P, "1 < 2", "2 <= 2", "3 > 2.5", "1.0 >= 1", "'a' < 'b'", "'abc' > 'abd'", "@2021 < @2022",
    "@2021-01 < @2021", "@2021-01-01 = @2021-01-01", "@2021-01-01 = @2021-01", "@2021-01-01 != @2021-01-02",
    "@2021-01-01T10:00:00Z = @2021-01-01T12:00:00+02:00", "@2021-01-01T10:00 < @2021-01-01T11:00",
    "@T10:00 < @T11:00", "@T10:00 = @T10:00:00", "birthDate = @2003-03-03", "birthDate < @2010-01-01",
    "birthDate > @2003", "birthDate >= @2003-03", "birthDate < today()", "1 = 1.0", "1 ~ 1.0",
    "1.01 ~ 1.0", "1.2 = 1.20", "'abc' = 'ABC'", "'abc' ~ 'ABC'", "'a  b' ~ 'A B'", "'abc' != 'abd'",
    "{} = 1", "1 = {}", "{} ~ {}", "1 ~ {}", "(1 | 2) = (1 | 2)", "(1 | 2) = (2 | 1)", "(1 | 2) ~ (2 | 1)",
    "(1 | 2) != (1 | 3)", "true = true", "true != false", "5 'mg' = 5 'mg'", "5 'mg' < 6 'mg'",
    "5 'mg' = 5.0 'mg'", "5 'mg' ~ 5 'mg'", "5 'mg' = 5 'g'", "4 days = 4 'd'", "1 year ~ 1 'a'",
    "name = name", "name.text = 'Aulus Agerius'", "name.text !~ 'aulus agerius'", "@2021 = @2021-01",
    "@2021 ~ @2021-01", "@2021-01-01T10:00 = @2021-01-01T10:00:00", "'1' = 1", "birthDate ~ @2003-03-03",
    "id = 'DDCCPatientEnglish'", "meta.profile = 'http://smart.who.int/ddcc/StructureDefinition/DDCCPatient'")
add(I, "occurrence = @2021-05-06", "occurrence > @2021-05-01", "occurrence < @2021-05-06T10:00",
    "expirationDate > occurrence", "protocolApplied.doseNumber < protocolApplied.seriesDoses",
    "protocolApplied.doseNumber = 1", "status = 'completed'", "status != 'entered-in-error'",
    "extension.where(url = 'http://smart.who.int/ddcc/StructureDefinition/DDCCVaccineValidFrom').value > occurrence")

# --- boolean logic ----------------------------------------------------------------
for a in ["true", "false", "{}"]:
    for b in ["true", "false", "{}"]:
        for op in ["and", "or", "xor", "implies"]:
            add(P, f"({a}) {op} ({b})")
add(P, "true.not()", "false.not()", "{}.not()", "(1 = 1).not()", "name.exists() and birthDate.exists()",
    "gender.exists() or birthDate.exists()", "1 and true", "'x' or false")

# --- membership, union, type operators -------------------------------------------
add(P, "1 in (1 | 2)", "3 in (1 | 2)", "(1 | 2) contains 2", "(1 | 2) contains 5", "{} in (1 | 2)",
    "'Aulus Agerius' in name.text", "name.use contains 'official'", "(1 | 2 | 2 | 3).count()",
    "(name | name).count()", "1 is Integer", "1 is System.Integer", "1.5 is Decimal", "'a' is String",
    "'a' is FHIR.string", "@2021 is Date", "@2021-01-01T10:00 is DateTime", "@T10:00 is Time",
    "5 'mg' is Quantity", "true is Boolean", "1 is Decimal", "1 as Integer", "1 as String",
    "Patient is Patient", "Patient is Resource", "Patient is DomainResource", "Patient is FHIR.Patient",
    "Patient is Observation", "birthDate is date", "birthDate is FHIR.date", "birthDate is string",
    "name is HumanName", "name.first() is HumanName", "name.text is string", "id is string",
    "meta.profile is canonical", "meta.profile is uri", "(name as HumanName).text", "birthDate as date",
    "birthDate.is(date)", "birthDate.as(date)", "name.first().is(HumanName)", "1.is(Integer)",
    "Patient.ofType(Patient).id", "name.ofType(HumanName).use")
add(I, "occurrence is dateTime", "occurrence is string", "protocolApplied.doseNumber is positiveInt",
    "protocolApplied.doseNumber is integer", "extension.value.ofType(Coding).count()",
    "extension.value.ofType(FHIR.Coding).system", "vaccineCode is CodeableConcept", "patient is Reference",
    "status is code", "status is string", "lotNumber is string", "Immunization is DomainResource")

# --- existence -------------------------------------------------------------------------
add(P, "name.exists()", "gender.exists()", "name.empty()", "gender.empty()", "name.exists(use = 'official')",
    "name.exists(use = 'usual')", "name.all(use = 'official')", "name.all(text.exists())", "{}.all(false)",
    "(true | false).allTrue()", "(true | true).allTrue()", "(true | false).anyTrue()", "(false).anyTrue()",
    "(false | false).allFalse()", "(true | false).anyFalse()", "{}.allTrue()", "{}.anyTrue()",
    "(1 | 2).subsetOf(1 | 2 | 3)", "(1 | 4).subsetOf(1 | 2 | 3)", "(1 | 2 | 3).supersetOf(2 | 3)",
    "{}.subsetOf(1)", "name.count()", "{}.count()", "(1 | 2 | 3).count()", "(1 | 1 | 2).distinct().count()",
    "(1 | 2).isDistinct()", "(1).combine(1).isDistinct()", "(1).combine(1).distinct()", "exists()",
    "children().exists()")
add(Q, "item.exists(linkId = 'dose')", "item.answer.all(value.exists())", "item.linkId.isDistinct()",
    "item.answer.value.ofType(Coding).code.distinct().count()", "item.where(linkId = 'nothing').exists()")

# --- filtering, projection ----------------------------------------------------------------
add(Q, "item.where(linkId = 'dose').answer.value", "item.where(answer.value is Coding).linkId",
    "item.select(linkId)", "item.select(answer.value.ofType(integer))", "item.where($this.linkId.startsWith('v')).linkId",
    "item.where($index < 3).linkId", "item.select($index).last()", "item.answer.value.where($this is date).count()",
    "item.select(linkId & '=' & answer.value.ofType(string)).where(length() > 6)",
    "item.repeat(answer).count()", "item.where(linkId = 'vaccine').answer.value.where(code = 'XM0GQ8').exists()",
    "item.where(linkId in ('dose' | 'total_doses')).answer.value.sum()",
    "item.answer.value.ofType(date).max()", "item.answer.value.ofType(date).min()")
add(B, "entry.resource.where(resourceType = 'Immunization').protocolApplied.doseNumber",
    "entry.select(resource.id).first()", "entry.resource.repeat(section).code.coding.code",
    "entry.select(fullUrl.substring(30))")
add(P, "(1 | 2 | 3).where($this > 1)", "(1 | 2 | 3).select($this * 2)", "(1 | 2 | 3).select($index)",
    "(1 | 2 | 3).where($this > 5)", "(1 | 2 | 3).aggregate($this + $total, 0)", "(1 | 2 | 3).aggregate($total + $this)",
    "(1 | 2 | 3).aggregate(iif($total.empty(), $this, iif($this > $total, $this, $total)))",
    "(1 | 2).repeat($this)", "name.select(text | use)")

# --- subsetting, combining ------------------------------------------------------------
add(P, "(1 | 2 | 3).first()", "(1 | 2 | 3).last()", "(1 | 2 | 3).tail()", "(1 | 2 | 3).skip(1)",
    "(1 | 2 | 3).skip(5)", "(1 | 2 | 3).take(2)", "(1 | 2 | 3).take(0)", "(1 | 2 | 3).skip(-1)",
    "(1 | 2 | 3)[1]", "(1 | 2 | 3)[5]", "(1).single()", "{}.single()", "(1 | 2).single()",
    "(1 | 2 | 3).intersect(2 | 3 | 4)", "(1 | 2 | 3).exclude(2)", "(1 | 2).union(2 | 3)",
    "(1 | 2).combine(2 | 3)", "(1 | 2).combine(2 | 3).count()", "{}.first()", "{}.last()", "{}.tail()",
    "name.first().text", "name.last().use", "(1 | 1 | 2).intersect(1)", "(1).combine(1).exclude(1)")

# --- conversion -----------------------------------------------------------------------
conv_inputs = ["'1'", "'1.5'", "'abc'", "'true'", "'T'", "'no'", "1", "0", "2", "1.0", "1.5", "true", "false",
               "@2021-07-08", "@2021-07-08T10:30:00", "@T10:30", "'2021-07-08'", "'2021-07-08T10:30:00Z'",
               "'10:30:00'", "'5 mg'", "'5 \\'mg\\''", "'4 days'", "5 'mg'"]
for x in conv_inputs:
    for f in ["toBoolean", "toInteger", "toDecimal", "toString", "toQuantity"]:
        add(P, f"({x}).{f}()")
for x in ["'1'", "'abc'", "'true'", "1.5", "'2021-07-08'", "'10:30'", "'5 \\'mg\\''", "@2021"]:
    for f in ["convertsToBoolean", "convertsToInteger", "convertsToDecimal", "convertsToString",
              "convertsToDate", "convertsToDateTime", "convertsToTime", "convertsToQuantity"]:
        add(P, f"({x}).{f}()")
add(P, "'2021-07-08'.toDate()", "'2021-07'.toDate()", "'2021-07-08T10:00:00Z'.toDateTime()",
    "'10:30:15'.toTime()", "'abc'.toDate()", "birthDate.toDate()", "birthDate.toDateTime()",
    "iif(true, 'a', 'b')", "iif(false, 'a', 'b')", "iif({}, 'a', 'b')", "iif(false, 'a')",
    "iif(name.exists(), name.text, 'none')", "(4 days).toQuantity('d')", "(1 'h').toQuantity('min')",
    "(1000 'ms').toQuantity('s')", "(5 'mg').toQuantity('g')", "1.toQuantity()", "'1.50 \\'cm\\''.toQuantity()",
    "birthDate.toString().substring(0, 4)", "1.5.toString()", "(1.50).toString()", "true.toString()",
    "(5 'mg').toString()", "(4 days).toString()", "@2021-07-08T10:30:00.000+02:00.toString()")
add(Q, ans("dose") + ".toInteger() + 1", ans("dose") + ".toString()", ans("date") + ".toString()",
    ans("identifier") + ".toInteger()", ans("birthDate") + ".toDate()")

# --- strings -------------------------------------------------------------------------------
add(P, "'abcdef'.indexOf('cd')", "'abcdef'.indexOf('x')", "'abcdef'.indexOf('')", "'abcdef'.substring(2)",
    "'abcdef'.substring(2, 3)", "'abcdef'.substring(10)", "'abcdef'.substring(-1)", "'abcdef'.substring(0, 100)",
    "'abcdef'.startsWith('ab')", "'abcdef'.startsWith('b')", "'abcdef'.endsWith('ef')", "'abcdef'.contains('cd')",
    "'abcdef'.contains('')", "'AbC'.upper()", "'AbC'.lower()", "'abc'.length()", "''.length()", "'abc'.toChars()",
    "'a-b-c'.replace('-', '+')", "'abc'.replace('', 'x')", "'abc'.replace('z', 'y')", "'abc123'.matches('[0-9]+')",
    "'abc'.matches('^b')", "'abc'.matches('')", "'abc123'.replaceMatches('[0-9]', 'N')",
    "'2021-07-08'.replaceMatches('(?<y>\\\\d{4})-(?<m>\\\\d{2})-(?<d>\\\\d{2})', '${d}/${m}/${y}')",
    "'2021-07-08'.replaceMatches('(\\\\d{4})-(\\\\d{2})-(\\\\d{2})', '$3.$2.$1')",
    "'URN:HCID:123'.replaceMatches('[Uu][Rr][Nn]:[Hh][Cc][Ii][Dd]:', '')", "'Aulus'.replaceMatches('$', ' ')",
    "name.text.replaceMatches('$', ' ')", "name.text.replaceMatches('\\\\s+', '_')", "name.text.indexOf('Agerius')",
    "name.text.substring(0, 5)", "name.text.startsWith('Aulus')", "name.text.upper()", "name.text.length()",
    "name.text.contains('Ager')", "name.text.split(' ').count()", "name.text.split(' ').last()",
    "('a' | 'b' | 'c').join(',')", "'  padded  '.trim()", "{}.upper()", "'abc'.substring({})",
    "'abc'.startsWith({})", "name.text.toChars().first()", "'abc'.matches('(?i)ABC')", "'a.b'.replace('.', '')")
add(PZ, "name.text", "name.text.length()", "name.text.substring(0, 2)", "name.text.toChars().count()",
    "name.text.indexOf('阿')", "name.text.upper()")
add(PA, "name.text.length()", "name.text.replaceMatches(' ', '-')", "name.text.startsWith('أ')")
add(I, "lotNumber.toInteger() + 1", "id.replaceMatches('Immunization', 'Imm')", "vaccineCode.coding.code.substring(0, 2)",
    "patient.reference.replace('Patient/', '')", "patient.reference.split('/').last()")

# --- math -------------------------------------------------------------------------------------
add(P, "(-5).abs()", "(-5.5).abs()", "(-5 'mg').abs()", "1.1.ceiling()", "(-1.1).ceiling()", "1.9.floor()",
    "(-1.1).floor()", "1.9.truncate()", "(-1.9).truncate()", "0.exp()", "1.ln()", "100.log(10)", "2.power(10)",
    "2.power(0.5)", "2.5.power(2)", "(-1).power(0.5)", "3.14159.round(2)", "2.5.round()", "(-2.5).round()",
    "16.sqrt()", "(-1).sqrt()", "5.ceiling()", "{}.abs()", "(1 | 2 | 3).sum()", "(1.5 | 2.5).sum()",
    "(1 | 2 | 3).avg()", "(3 | 1 | 2).min()", "(3 | 1 | 2).max()", "('b' | 'a').min()")

# --- tree navigation ---------------------------------------------------------------------------
add(P, "children().count()", "name.children()", "descendants().count()", "name.descendants()",
    "descendants().ofType(HumanName).text", "meta.children()")
add(I, "protocolApplied.children().count()", "descendants().ofType(Coding).code",
    "descendants().ofType(Reference).reference", "extension.children().count()")
add(B, "descendants().ofType(Reference).count()", "entry.resource.children().ofType(CodeableConcept).coding.code")

# --- dates and times ----------------------------------------------------------------------------
add(P, "@2021-01-31 + 1 month", "@2020-02-29 + 1 year", "@2021-01-01 + 1 day", "@2021-01-01 - 1 day",
    "@2021-01-01 + 2 weeks", "@2021-01-01 + 24 hours", "@2021-01-01T10:00 + 90 minutes",
    "@2021-01-01T23:30:00Z + 1 hour", "@2021-01-01T10:00:00.000Z + 1500 'ms'", "@2021 + 1 year",
    "@2021-06 + 1 month", "@2021-01-01 + 1 'd'", "@2021-01-01 + 1 'wk'", "@T10:00 + 3 hours",
    "@T23:00 + 2 hours", "@2021-03-31 - 1 month", "birthDate + 18 years", "(birthDate + 18 years) < today()",
    "@1970-01-01T00:00:00.000+00:00 + 1620000000 's'", "@1970-01-01T00:00:00.000+00:00 + 1620000000 seconds",
    "@1970-01-01T00:00:00.000+00:00 + %epoch.toQuantity()", "@1970-01-01T00:00:00.000+00:00 + %epoch.toQuantity('s')",
    "@2021-01-01 + 1 'mg'", "@2021-01-01 + 1.5 days", "today() > @2020-01-01", "now() > @2020-01-01T00:00:00Z",
    "timeOfDay().exists()", "today().toString().length()", "now().toString().length() > 10",
    vars={"epoch": 1620000000})

# --- FHIR additions ----------------------------------------------------------------------------
add(I, "extension('http://smart.who.int/ddcc/StructureDefinition/DDCCCountryOfEvent').value",
    "extension('http://smart.who.int/ddcc/StructureDefinition/DDCCEventBrand').value.code",
    "extension('http://example.org/none').exists()", "status.hasValue()", "vaccineCode.hasValue()",
    "status.getValue()", "lotNumber.getValue()", "vaccineCode.getValue()", "htmlChecks()",
    "extension.where(url.endsWith('ValidFrom')).value.toString()", "trace('x').id", "id.trace('y', length())")

# --- inventory expressions (FML evaluate/where), over examples where meaningful ----------------
inv = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "..", "shared",
                                  "conformance", "ddcc-ig", "derived", "fml-feature-inventory.json")))
seen = set()
for kind, rows in inv["fhirpath_expressions"].items():
    for row in rows:
        ex = row["expression"]
        if ex in seen or "memberOf" in ex:
            continue
        seen.add(ex)
        add(Q, ex, vars={"epoch": 1620000000})
# the same forms with the FML variables bound to example data
add(P, "name.text.replaceMatches('$', ' ')", "'urn:hcid:123'.replaceMatches('[Uu][Rr][Nn]:[Hh][Cc][Ii][Dd]:', '')")
add(Q, ans("dose") + ".toInteger() + 1", "(" + ans("sex") + ".code = 'male')", "(" + ans("sex") + ".code = 'male').not()",
    "(" + ans("centre") + ".contains('Site'))")

# replacement syntaxes: JavaScript `$<name>`, Java/Matchbox `${name}`, numbered groups
add(I, "patient.reference.replaceMatches('.*Patient/(?<id>[A-Za-z0-9\\\\-\\\\.]{1,64})$', '$<id>')",
    "patient.reference.replaceMatches('.*Patient/(?<id>[A-Za-z0-9\\\\-\\\\.]{1,64})$', '${id}')",
    "patient.reference.replaceMatches('(\\\\w+)/(\\\\w+)', '$2@$1')", "patient.reference.replaceMatches('/', '$$')",
    "patient.reference.replaceMatches('[a-z]+', '<$&>')", "(1 | 2).iif(true, 'y', 'n')")

# more navigation, type and context forms
add(Q, "item.where(linkId = 'sex').answer.value.code = 'male'", "item.where(linkId = 'sex').answer.value is Coding",
    "item.answer.value.type().name", "item.answer.value.type().namespace", "'a'.type().name", "1.type().namespace",
    "%resource.item.count()", "%context.status", "$this.status", "item.where(linkId = %resource.item.first().linkId).linkId",
    "item.answer.value.ofType(Coding).where(system = 'http://id.who.int/icd11/mms').code",
    "item.select(answer.value.ofType(Coding).code).distinct()", "item.answer.value.ofType(date).where($this > @2021-04-10)",
    "item.where(linkId = 'date').answer.value + 14 days", "item.where(linkId = 'date').answer.value - 1 month",
    "(item.where(linkId = 'valid_until').answer.value - 1 year) = item.where(linkId = 'valid_from').answer.value",
    "item.answer.value.ofType(integer).aggregate($this + $total, 0)", "item.descendants().ofType(Coding).count()",
    "item.answer.value.hasValue()", "item.where(linkId = 'lot').answer.value.hasValue()",
    "item.where(linkId = 'lot').answer.value.getValue()", "item.where(linkId = 'lot').answer.value.length()",
    "item.where(linkId = 'dose').answer.value.toQuantity()", "item.where(linkId = 'dose').answer.value.toDecimal()",
    "item.where(linkId = 'date').answer.value.toDateTime()", "item.where(linkId = 'date').answer.value.convertsToDate()",
    "item.linkId.where(matches('^v')).count()", "item.linkId.select(upper()).first()", "item.linkId.indexOf('x')",
    "item.where(answer.value.ofType(string).exists()).linkId.join('|')")
add(B, "(entry.resource.ofType(Immunization).exists())", "(entry.resource.ofType(Observation).exists())",
    "entry.resource.ofType(Immunization).extension.where(url = 'http://smart.who.int/ddcc/StructureDefinition/DDCCCountryOfEvent').value",
    "entry.resource.ofType(Immunization).extension.where(url = 'http://smart.who.int/ddcc/StructureDefinition/DDCCVaccineMarketAuthorization').first().valueCoding.exists().not()",
    "entry.resource.ofType(Patient).name.given.exists().not() and entry.resource.ofType(Patient).name.family.exists().not()",
    "entry.resource.ofType(Composition).type().name", "entry.resource.type().name.distinct()",
    "entry.where(resource is Patient).fullUrl", "entry.resource.ofType(Immunization).vaccineCode.coding.code in ('XM0GQ8' | 'XM1NL1')",
    "entry.resource.ofType(ImmunizationRecommendation).recommendation.dateCriterion.value",
    "entry.resource.ofType(Immunization).occurrence.toString().substring(0, 4)")

# JavaScript coercions and quantity parts
add(I, "lotNumber + 1", "(5 'mg').value", "(5 'mg').unit", "(4 days).value", "status.substring(2, -1)",
    "expirationDate - occurrence", "occurrence.toDateTime() + 1 hour", "(occurrence | expirationDate).max()",
    "extension.value.ofType(date) + 1 month", "today() - 1 day < today()", "1.length()", "status.startsWith(1)")

seen_ids = set()
out = []
for n, e in enumerate(E):
    key = (e["resource"], e["expression"])
    if key in seen_ids:
        continue
    seen_ids.add(key)
    e = {"id": f"e{len(out) + 1:04}", **e}
    out.append(e)
path = os.path.join(os.path.dirname(__file__), "expressions.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"{len(out)} expressions -> {path}")
