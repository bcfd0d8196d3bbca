package dev.isthmus.e2e;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.IntOrString;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.apps.StatefulSet;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * The manifests of {@code deploy/kubernetes} as one overlay makes them: its {@code kustomization.yaml}'s
 * resources (directories with their own kustomization, or files), then its patches. Only what the
 * overlays use of kustomize is done here: {@code resources}, and {@code patches} that are strategic
 * merges of a ConfigMap's {@code data} (the same ConfigMap, its keys replaced or added). Anything
 * else in a kustomization stops the test, so an overlay cannot use what this does not check.
 */
final class KubeManifests {

    static final KubernetesSerialization SERIALIZATION = new KubernetesSerialization();

    final List<HasMetadata> objects;

    private KubeManifests(List<HasMetadata> objects) {
        this.objects = objects;
    }

    static KubeManifests overlay(Path dir) throws IOException {
        var out = new ArrayList<HasMetadata>();
        build(dir, out);
        return new KubeManifests(out);
    }

    @SuppressWarnings("unchecked")
    private static void build(Path dir, List<HasMetadata> out) throws IOException {
        Map<String, Object> k = SERIALIZATION.unmarshal(Files.readString(dir.resolve("kustomization.yaml")), Map.class);
        for (String key : k.keySet()) {
            if (!List.of("apiVersion", "kind", "resources", "patches", "images").contains(key)) {
                throw new AssertionError(dir.resolve("kustomization.yaml") + ": '" + key + "' is not something this test applies");
            }
        }
        for (Object r : (List<Object>) k.getOrDefault("resources", List.of())) {
            Path p = dir.resolve((String) r).normalize();
            if (Files.isDirectory(p)) {
                build(p, out);
            } else {
                out.addAll(load(p));
            }
        }
        for (Object patch : (List<Object>) k.getOrDefault("patches", List.of())) {
            Path p = dir.resolve((String) ((Map<String, Object>) patch).get("path"));
            for (HasMetadata o : load(p)) {
                if (!(o instanceof ConfigMap cm)) {
                    throw new AssertionError(p + ": only ConfigMap data patches are applied by this test, not " + o.getKind());
                }
                ConfigMap base = (ConfigMap) out.stream().filter(x -> x instanceof ConfigMap && same(x, cm)).findFirst()
                        .orElseThrow(() -> new AssertionError(p + ": patches ConfigMap " + cm.getMetadata().getNamespace() + "/"
                                + cm.getMetadata().getName() + ", which no resource defines"));
                var data = new LinkedHashMap<>(base.getData());
                data.putAll(cm.getData());
                base.setData(data);
            }
        }
    }

    static boolean same(HasMetadata a, HasMetadata b) {
        return a.getKind().equals(b.getKind()) && a.getMetadata().getName().equals(b.getMetadata().getName())
                && java.util.Objects.equals(a.getMetadata().getNamespace(), b.getMetadata().getNamespace());
    }

    /** Every document of a YAML file, as the Kubernetes object its kind says. */
    static List<HasMetadata> load(Path file) throws IOException {
        var out = new ArrayList<HasMetadata>();
        for (String doc : Files.readString(file).split("(?m)^---\\s*$")) {
            if (doc.lines().allMatch(l -> l.isBlank() || l.strip().startsWith("#"))) {
                continue;
            }
            Object o = SERIALIZATION.unmarshal(doc);
            if (!(o instanceof HasMetadata h)) {
                throw new AssertionError(file + ": a document that is not a Kubernetes object: " + o);
            }
            out.add(h);
        }
        return out;
    }

    <T extends HasMetadata> Stream<T> all(Class<T> type) {
        return objects.stream().filter(type::isInstance).map(type::cast);
    }

    <T extends HasMetadata> Optional<T> find(Class<T> type, String namespace, String name) {
        return all(type).filter(o -> o.getMetadata().getName().equals(name)
                && java.util.Objects.equals(o.getMetadata().getNamespace(), namespace)).findFirst();
    }

    /** A workload's name, namespace, pod template and volume claims (Deployments and StatefulSets). */
    record Workload(String kind, String name, String namespace, Map<String, String> selector, PodTemplateSpec template, List<String> claims) {
    }

    List<Workload> workloads() {
        var out = new ArrayList<Workload>();
        all(Deployment.class).forEach(d -> out.add(new Workload("Deployment", d.getMetadata().getName(), d.getMetadata().getNamespace(),
                d.getSpec().getSelector().getMatchLabels(), d.getSpec().getTemplate(), List.of())));
        all(StatefulSet.class).forEach(s -> out.add(new Workload("StatefulSet", s.getMetadata().getName(), s.getMetadata().getNamespace(),
                s.getSpec().getSelector().getMatchLabels(), s.getSpec().getTemplate(),
                s.getSpec().getVolumeClaimTemplates() == null ? List.of() : s.getSpec().getVolumeClaimTemplates().stream()
                        .map(c -> c.getMetadata().getName()).toList())));
        return out;
    }

    /** The containers a pod runs for as long as it lives: native sidecars (restartable init containers) first. */
    static List<Container> longRunning(PodTemplateSpec t) {
        var out = new ArrayList<Container>();
        if (t.getSpec().getInitContainers() != null) {
            t.getSpec().getInitContainers().stream().filter(c -> "Always".equals(c.getRestartPolicy())).forEach(out::add);
        }
        out.addAll(t.getSpec().getContainers());
        return out;
    }

    static boolean selects(Map<String, String> selector, Map<String, String> labels) {
        return selector != null && !selector.isEmpty() && labels != null && labels.entrySet().containsAll(selector.entrySet());
    }

    /** The container port a Service port's target names in a pod template; empty when none matches. */
    static Optional<Integer> targetPort(Service svc, int servicePort, PodTemplateSpec t) {
        var sp = svc.getSpec().getPorts().stream().filter(p -> p.getPort() == servicePort).findFirst();
        if (sp.isEmpty()) {
            return Optional.empty();
        }
        IntOrString target = sp.get().getTargetPort() == null ? new IntOrString(servicePort) : sp.get().getTargetPort();
        var ports = longRunning(t).stream().filter(c -> c.getPorts() != null).flatMap(c -> c.getPorts().stream()).toList();
        if (target.getIntVal() != null) {
            return ports.stream().filter(p -> p.getContainerPort().equals(target.getIntVal())).map(p -> p.getContainerPort()).findFirst();
        }
        return ports.stream().filter(p -> target.getStrVal().equals(p.getName())).map(p -> p.getContainerPort()).findFirst();
    }
}
