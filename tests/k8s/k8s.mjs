// Checks of the Kubernetes manifests, offline.
//   node k8s.mjs validate <rendered.yaml>…   every document against the Kubernetes API
//       schemas (kubernetes-models; Prometheus Operator's for its kinds), the platform's
//       policy, and the alert rules with promtool. Each file is one rendered set.
//   node k8s.mjs reject <good.yaml> <cases.yaml>   the good set passes, and each case —
//       the good set broken in one place — is refused with the problem it names.
//   node k8s.mjs base <helm output> <out dir>  writes the kustomize base from the chart.
//   node k8s.mjs confined <rendered.yaml> <workload> <name>…   each named ConfigMap or
//       Secret (a generated name's hash suffix aside) reaches that workload, and no other.
//   node k8s.mjs web <rendered.yaml> <release>   the web portal reaches only the gateway and
//       Redis, and reads no Secret but Redis's.
// Run with NODE_PATH pointing at the tools' node_modules (scripts/check-k8s does).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(path.join(process.env.NODE_PATH ?? ".", "noop.js"));
const YAML = require("yaml");

// apiVersion → module with one class per kind.
async function modelFor(apiVersion, kind) {
  const pkg = apiVersion.startsWith("monitoring.coreos.com/") ? "@kubernetes-models/prometheus-operator" : "kubernetes-models";
  const mod = await import(pathToFileURL(path.join(process.env.NODE_PATH, pkg, apiVersion, "index.js")));
  const model = mod[kind] ?? mod.default?.[kind];  // CommonJS modules arrive as default
  if (!model) throw new Error(`unknown kind ${kind} in ${apiVersion}`);
  return model;
}

function documents(text) {
  return YAML.parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(d.errors[0].message);
      return d.toJS();
    })
    .filter((d) => d && Object.keys(d).length);
}

// The platform's rules for a rendered set; returns the violations.
function policy(docs) {
  const problems = [];
  const byKind = (k) => docs.filter((d) => d.kind === k);
  const matches = (selector, labels) =>
    Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v) && Object.keys(selector ?? {}).length > 0;
  const workloads = [...byKind("Deployment"), ...byKind("StatefulSet"), ...byKind("Job")];
  const pulling = workloads.filter((w) => (w.spec.template.spec.imagePullSecrets ?? []).length > 0);
  if (pulling.length > 0 && pulling.length < workloads.length)
    problems.push(`imagePullSecrets on only ${pulling.length} of ${workloads.length} workloads`);
  for (const w of workloads) {
    const name = `${w.kind} ${w.metadata.name}`;
    const pod = w.spec.template.spec;
    const podSec = pod.securityContext ?? {};
    if (pod.automountServiceAccountToken !== false) problems.push(`${name}: automountServiceAccountToken is not false`);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const where = `${name} container ${c.name}`;
      const sec = c.securityContext ?? {};
      const nonRoot = sec.runAsNonRoot ?? podSec.runAsNonRoot;
      const user = sec.runAsUser ?? podSec.runAsUser;
      if (nonRoot !== true) problems.push(`${where}: runs as root (runAsNonRoot is not true)`);
      if (user === 0) problems.push(`${where}: runs as root (runAsUser 0)`);
      if (sec.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
      if (sec.privileged === true) problems.push(`${where}: privileged`);
      if (!(sec.capabilities?.drop ?? []).includes("ALL")) problems.push(`${where}: capabilities do not drop ALL`);
      if ((sec.seccompProfile ?? podSec.seccompProfile)?.type !== "RuntimeDefault")
        problems.push(`${where}: seccomp profile is not RuntimeDefault`);
      for (const r of ["requests", "limits"])
        for (const k of ["cpu", "memory"])
          if (c.resources?.[r]?.[k] === undefined) problems.push(`${where}: no resources.${r}.${k}`);
      if (w.kind !== "Deployment") continue;
      // Deployments are the platform's own programs: stricter.
      if (sec.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem is not true`);
      if (!c.readinessProbe) problems.push(`${where}: no readinessProbe`);
      if (!c.livenessProbe) problems.push(`${where}: no livenessProbe`);
      if (!c.lifecycle?.preStop) problems.push(`${where}: no preStop`);
      const grpcPort = (c.ports ?? []).find((p) => p.name === "grpc");
      if (grpcPort && !c.readinessProbe?.grpc) problems.push(`${where}: gRPC server without a native gRPC readinessProbe`);
    }
    if (w.kind !== "Deployment") continue;
    const labels = w.spec.template.metadata.labels;
    if (!matches(w.spec.selector?.matchLabels, labels)) problems.push(`${name}: selector does not match its pods`);
    if (!byKind("HorizontalPodAutoscaler").some((h) => h.spec.scaleTargetRef.kind === "Deployment" && h.spec.scaleTargetRef.name === w.metadata.name))
      problems.push(`${name}: no HorizontalPodAutoscaler`);
    if (!byKind("PodDisruptionBudget").some((p) => matches(p.spec.selector.matchLabels, labels)))
      problems.push(`${name}: no PodDisruptionBudget`);
    if ((pod.topologySpreadConstraints ?? []).length === 0)
      problems.push(`${name}: no topologySpreadConstraints`);
    const grpc = pod.containers.some((c) => (c.ports ?? []).some((p) => p.name === "grpc"));
    if (grpc && !byKind("Service").some((s) => s.spec.clusterIP === "None" && matches(s.spec.selector, labels)))
      problems.push(`${name}: gRPC server without a headless Service`);
  }
  for (const h of byKind("HorizontalPodAutoscaler")) {
    const kinds = (h.spec.metrics ?? []).map((m) => m.resource?.name).filter(Boolean);
    if (!kinds.includes("cpu") || !kinds.includes("memory")) problems.push(`HPA ${h.metadata.name}: not on both CPU and memory`);
    if (h.spec.minReplicas > h.spec.maxReplicas) problems.push(`HPA ${h.metadata.name}: minReplicas > maxReplicas`);
  }
  // Whatever exposes a public port (an ingress backend, a LoadBalancer) must not expose metrics with it.
  for (const s of byKind("Service")) {
    const names = (s.spec.ports ?? []).map((p) => p.name);
    const exposed = names.includes("http") || ["LoadBalancer", "NodePort"].includes(s.spec.type);
    if (exposed && names.includes("metrics")) problems.push(`Service ${s.metadata.name}: metrics port on a public Service`);
  }
  const policies = byKind("NetworkPolicy");
  if (policies.length && !policies.some((p) => Object.keys(p.spec).length === 2 && !p.spec.ingress && !p.spec.egress))
    problems.push("NetworkPolicies without a deny-all policy");
  for (const sa of byKind("ServiceAccount"))
    if (sa.automountServiceAccountToken !== false) problems.push(`ServiceAccount ${sa.metadata.name}: token automounted`);
  return problems;
}

function promtool(docs) {
  const rules = docs.filter((d) => d.kind === "PrometheusRule");
  if (!rules.length) return [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rules-"));
  const file = path.join(dir, "rules.yaml");
  fs.writeFileSync(file, YAML.stringify({ groups: rules.flatMap((r) => r.spec.groups) }));
  const r = spawnSync("promtool", ["check", "rules", file], { encoding: "utf8" });
  fs.rmSync(dir, { recursive: true });
  return r.status === 0 ? [] : [`promtool: ${(r.stdout + r.stderr).trim()}`];
}

// Per document: a promise of "" when valid, else the problem.
function validateAll(docs) {
  return docs.map(async (d) => {
    try {
      const Model = await modelFor(d.apiVersion, d.kind);
      new Model(d).validate();
      return "";
    } catch (e) {
      return `${d.kind} ${d.metadata?.name}: ${e.message}`;
    }
  });
}

// Everything wrong with a rendered set: schemas, policy, alert rules.
async function problemsOf(docs) {
  const schema = (await Promise.all(validateAll(docs))).filter(Boolean);
  return [...schema, ...policy(docs), ...promtool(docs)];
}

const [command, ...args] = process.argv.slice(2);
let failed = false;
if (command === "validate") {
  for (const file of args) {
    const docs = documents(fs.readFileSync(file, "utf8"));
    const problems = await problemsOf(docs);
    if (problems.length) {
      failed = true;
      console.error(`${file}: ${problems.length} problem(s)\n  ${problems.join("\n  ")}`);
    } else {
      const kinds = {};
      for (const d of docs) kinds[d.kind] = (kinds[d.kind] ?? 0) + 1;
      console.log(`${path.basename(file)}: ${docs.length} objects valid and within policy (${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(", ")})`);
    }
  }
} else if (command === "reject") {
  // The good set passes; each case breaks it in one place and must be reported.
  const [goodFile, casesFile] = args;
  const good = documents(fs.readFileSync(goodFile, "utf8"));
  const cases = YAML.parse(fs.readFileSync(casesFile, "utf8"));
  const clean = await problemsOf(good);
  if (clean.length) {
    failed = true;
    console.error(`${goodFile}: should pass, got: ${clean.join("; ")}`);
  }
  for (const c of cases) {
    const docs = structuredClone(good);
    const [where, value, remove] = c.set ? [...Object.entries(c.set)[0], false] : [c.delete, undefined, true];
    const [kind, ...keys] = where.split("/");
    let o = docs.find((d) => d.kind === kind);
    for (const k of keys.slice(0, -1)) o = o[k];
    const last = keys[keys.length - 1];
    if (remove) Array.isArray(o) ? o.splice(Number(last), 1) : delete o[last];
    else o[last] = value;
    const problems = await problemsOf(docs);
    if (!problems.some((p) => p.includes(c.expect))) {
      failed = true;
      console.error(`case "${c.expect}" (${where}): not reported; got: ${problems.join("; ") || "none"}`);
    }
  }
  if (!failed) console.log(`policy and schema checks: the good set passes, all ${cases.length} broken variants are refused`);
} else if (command === "base") {
  // The chart's output with Helm's own marks removed, one file per kind.
  const [rendered, out] = args;
  const docs = documents(fs.readFileSync(rendered, "utf8"));
  const strip = (o) => {
    if (Array.isArray(o)) return o.forEach(strip);
    if (!o || typeof o !== "object") return;
    for (const k of Object.keys(o)) {
      if (k === "helm.sh/chart" || k.startsWith("helm.sh/hook") || k.startsWith("checksum/")) delete o[k];
      else if (k === "app.kubernetes.io/managed-by") o[k] = "kustomize";
      else strip(o[k]);
    }
    if (o.annotations && Object.keys(o.annotations).length === 0) delete o.annotations;
  };
  const files = {};
  for (const d of docs) {
    strip(d);
    const name = d.kind.replace(/([a-z])([A-Z])/g, "$1-$2").toLowerCase() + ".yaml";
    (files[name] ??= []).push(d);
  }
  const header = "# Generated from helm/stadtportal by scripts/check-k8s --update-base; do not edit.\n";
  for (const [name, list] of Object.entries(files))
    fs.writeFileSync(path.join(out, name), header + list.map((d) => YAML.stringify(d)).join("---\n"));
  fs.writeFileSync(
    path.join(out, "kustomization.yaml"),
    header + YAML.stringify({ apiVersion: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization", resources: Object.keys(files).sort() }),
  );
} else if (command === "rules") {
  // The rendered PrometheusRules' groups as a Prometheus rule file next to a copy of the
  // rules' unit tests, and every alert tested both firing and silent.
  const [rendered, testsFile, out] = args;
  const groups = documents(fs.readFileSync(rendered, "utf8"))
    .filter((d) => d.kind === "PrometheusRule")
    .flatMap((r) => r.spec.groups);
  fs.writeFileSync(path.join(out, "rules.yaml"), YAML.stringify({ groups }));
  fs.copyFileSync(testsFile, path.join(out, path.basename(testsFile)));
  const cases = YAML.parse(fs.readFileSync(testsFile, "utf8")).tests.flatMap((t) => t.alert_rule_test ?? []);
  const alerts = groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => r.alert);
  for (const alert of alerts) {
    const mine = cases.filter((c) => c.alertname === alert);
    if (!mine.some((c) => (c.exp_alerts ?? []).length > 0) || !mine.some((c) => (c.exp_alerts ?? []).length === 0)) {
      failed = true;
      console.error(`alert ${alert}: needs a test where it fires and one where it stays silent`);
    }
  }
  if (!alerts.length) {
    failed = true;
    console.error(`${rendered}: no alert rules`);
  }
  if (!failed) console.log(`alert rules: each of the ${alerts.length} alerts has a firing and a silent test`);
} else if (command === "dashboards") {
  // Every panel query of the dashboards as a recording rule for promtool to parse, with
  // the dashboards' variables filled in.
  const [out, ...files] = args;
  const rules = [];
  for (const file of files) {
    const dash = JSON.parse(fs.readFileSync(file, "utf8"));
    for (const p of dash.panels ?? [])
      for (const t of p.targets ?? []) {
        if (!t.expr) {
          failed = true;
          console.error(`${file}: panel "${p.title}" has a target without a query`);
          continue;
        }
        const expr = t.expr
          .replaceAll("$namespace", "stadtportal")
          .replaceAll("$online_service", "civil-registry-certificate")
          .replaceAll("$service", ".*")
          .replaceAll("$__range", "7d");
        rules.push({ record: `dashboard:query_${rules.length}:${dash.uid.replaceAll("-", "_")}`, expr });
      }
  }
  // Every recording rule a panel reads is one the chart records (rules.yaml, written by
  // the "rules" command before).
  const recorded = new Set(
    YAML.parse(fs.readFileSync(path.join(out, "rules.yaml"), "utf8"))
      .groups.flatMap((g) => g.rules)
      .filter((r) => r.record)
      .map((r) => r.record),
  );
  for (const r of rules)
    for (const [name] of r.expr.matchAll(/stadtportal:[a-z0-9_:]+/g))
      if (!recorded.has(name)) {
        failed = true;
        console.error(`a dashboard panel reads ${name}, which no recording rule of the chart records`);
      }
  fs.writeFileSync(path.join(out, "dashboard-queries.yaml"), YAML.stringify({ groups: [{ name: "dashboards", rules }] }));
  if (!failed) console.log(`dashboards: ${rules.length} panel queries from ${files.length} dashboard(s)`);
} else if (command === "confined") {
  // Which ConfigMaps and Secrets each workload's pods read: volumes, env, envFrom.
  const [rendered, workload, ...names] = args;
  const docs = documents(fs.readFileSync(rendered, "utf8"));
  const reads = (pod) => {
    const refs = [];
    for (const v of pod.volumes ?? []) refs.push(v.configMap?.name, v.secret?.secretName);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      for (const e of c.envFrom ?? []) refs.push(e.configMapRef?.name, e.secretRef?.name);
      for (const e of c.env ?? []) refs.push(e.valueFrom?.configMapKeyRef?.name, e.valueFrom?.secretKeyRef?.name);
    }
    return refs.filter(Boolean);
  };
  const is = (ref, name) => ref === name || new RegExp(`^${name}-[a-z0-9]{10}$`).test(ref);
  const workloads = docs.filter((d) => ["Deployment", "StatefulSet", "Job"].includes(d.kind));
  if (!workloads.some((w) => w.metadata.name === workload)) {
    failed = true;
    console.error(`${rendered}: no workload ${workload}`);
  }
  for (const name of names) {
    for (const w of workloads) {
      const mine = w.metadata.name === workload;
      if (reads(w.spec.template.spec).some((r) => is(r, name)) !== mine) {
        failed = true;
        console.error(`${rendered}: ${w.kind} ${w.metadata.name} ${mine ? "does not read" : "reads"} ${name}`);
      }
    }
  }
  if (!failed) console.log(`${path.basename(rendered)}: ${names.join(", ")} reach ${workload} only`);
} else if (command === "web") {
  // The web portal's pods: out only to the gateway's pods (its HTTP port) and Redis, in only
  // on their HTTP port (from the given peers) and metrics port, and no Secret but Redis's.
  const [rendered, release] = args;
  const docs = documents(fs.readFileSync(rendered, "utf8"));
  const find = (kind, name) => docs.find((d) => d.kind === kind && d.metadata.name === name);
  const np = find("NetworkPolicy", `${release}-web`);
  const deployment = find("Deployment", `${release}-web`);
  const gateway = find("Deployment", `${release}-gateway`);
  const problems = [];
  if (!np || !deployment || !gateway) problems.push("no NetworkPolicy or Deployment of the web portal or the gateway");
  else {
    const gatewayPort = gateway.spec.template.spec.containers[0].ports.find((p) => p.name === "http").containerPort;
    // Redis's rule may name where Redis is (networkPolicy.databaseTo), never pods of ours.
    const egress = (np.spec.egress ?? []).map((e) => ({
      ports: (e.ports ?? []).map((p) => p.port).sort(),
      to: (e.to ?? []).filter((t) => t.podSelector).map((t) => t.podSelector.matchLabels?.["app.kubernetes.io/component"]),
    }));
    const redisPort = 6379;  // networkPolicy.redisPort, as every checked set has it
    const want = JSON.stringify([{ ports: [gatewayPort], to: ["gateway"] }, { ports: [redisPort], to: [] }]);
    if (JSON.stringify(egress) !== want) problems.push(`web egress ${JSON.stringify(egress)}, expected ${want}`);
    const gatewayNp = find("NetworkPolicy", `${release}-gateway`);
    const fromWeb = (gatewayNp?.spec.ingress ?? []).some((i) =>
      (i.from ?? []).some((f) => f.podSelector?.matchLabels?.["app.kubernetes.io/component"] === "web"));
    if (!fromWeb) problems.push("the gateway's NetworkPolicy does not let the web portal in");
    const secrets = deployment.spec.template.spec.containers.flatMap((c) =>
      (c.env ?? []).map((e) => e.valueFrom?.secretKeyRef?.name).filter(Boolean));
    if (JSON.stringify(secrets) !== JSON.stringify([`${release}-redis`])) problems.push(`web reads Secrets ${secrets}`);
  }
  for (const p of problems) console.error(`${rendered}: ${p}`);
  if (problems.length) failed = true;
  else console.log(`${path.basename(rendered)}: the web portal reaches only the gateway and Redis, reads only Redis's Secret`);
} else {
  console.error("usage: k8s.mjs validate <files…> | reject <good> <cases> | base <rendered> <dir> | confined <rendered> <workload> <names…> | web <rendered> <release>");
  process.exit(2);
}
process.exit(failed ? 1 : 0);
