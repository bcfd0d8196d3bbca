package dev.isthmus.controller.registry;

import dev.isthmus.api.names.MeshNames;
import dev.isthmus.api.registry.Endpoint;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointPort;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSlice;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.informers.ResourceEventHandler;
import io.fabric8.kubernetes.client.informers.SharedIndexInformer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.jboss.logging.Logger;

/**
 * The Kubernetes registry source: Services, their EndpointSlices ({@code discovery.k8s.io/v1}) and
 * the Pods they target, watched with informers, turned into endpoints. Every change (debounced by 100 ms) hands the whole
 * set to the sink.
 *
 * <p>Mapping, per Service {@code ns/name} and each ready-or-not address of each of its slices
 * (label {@code kubernetes.io/service-name}):
 * <ul>
 *   <li>service {@code ns/name}; instance: the target Pod's name (else the address), suffixed
 *       {@code :port} when the slice has several ports;</li>
 *   <li>address, port: the address and the slice's port (the target port: in a meshed pod, its
 *       sidecar's inbound listener);</li>
 *   <li>service port (label {@value MeshNames#SERVICE_PORT_LABEL}, left out for
 *       {@value MeshNames#DEFAULT_SERVICE_PORT}): the Service's port of the slice port's name, which
 *       names the port in clusters, SNIs and virtual hosts in every cluster;</li>
 *   <li>protocol: the port's {@code appProtocol} ({@code http}, {@code http2}/{@code kubernetes.io/h2c},
 *       {@code grpc}), else its name's prefix as Istio reads it ({@code http-}, {@code http2-},
 *       {@code grpc-}, {@code tcp-}), else {@code tcp};</li>
 *   <li>healthy: the endpoint's {@code ready} condition (true when absent, as Kubernetes says);</li>
 *   <li>zone: the endpoint's {@code zone}, else the cluster's;</li>
 *   <li>labels: {@code version} from the target Pod's {@code version} label, else the slice's, else
 *       the Service's, else none (so a canary's pods, behind the same Service, are their own subset);</li>
 *   <li>identity: {@code spiffe://<trust-domain>/ns/<ns>/sa/<sa>}, where {@code sa} is the target
 *       Pod's service account (the one its sidecar's token proves to the trust bridge), else the
 *       Service's {@code isthmus.dev/service-account} annotation, else {@code default}.</li>
 * </ul>
 * Slices of a Service that does not exist (yet) are ignored.
 */
public final class KubernetesEndpoints implements AutoCloseable {

    private static final Logger LOG = Logger.getLogger(KubernetesEndpoints.class);
    public static final String SERVICE_NAME_LABEL = "kubernetes.io/service-name";
    public static final String SERVICE_ACCOUNT_ANNOTATION = "isthmus.dev/service-account";

    private final KubernetesClient client;
    private final List<String> namespaces;
    private final String cluster;
    private final String region;
    private final String zone;
    private final String trustDomain;
    private final Consumer<List<Endpoint>> sink;
    private final List<SharedIndexInformer<Service>> services = new ArrayList<>();
    private final List<SharedIndexInformer<EndpointSlice>> slices = new ArrayList<>();
    private final List<SharedIndexInformer<Pod>> pods = new ArrayList<>();
    private final ScheduledExecutorService debounce = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("kubernetes-source").unstarted(r));
    private final AtomicBoolean scheduled = new AtomicBoolean();

    public KubernetesEndpoints(KubernetesClient client, List<String> namespaces, String cluster, String region, String zone,
            String trustDomain, Consumer<List<Endpoint>> sink) {
        this.client = client;
        this.namespaces = List.copyOf(namespaces);
        this.cluster = cluster;
        this.region = region;
        this.zone = zone;
        this.trustDomain = trustDomain;
        this.sink = sink;
    }

    /** Starts the informers; returns once their first lists arrived. */
    public void start() {
        ResourceEventHandler<HasMetadata> onChange = new ResourceEventHandler<>() {
            @Override
            public void onAdd(HasMetadata obj) {
                changed();
            }

            @Override
            public void onUpdate(HasMetadata oldObj, HasMetadata newObj) {
                changed();
            }

            @Override
            public void onDelete(HasMetadata obj, boolean deletedFinalStateUnknown) {
                changed();
            }
        };
        if (namespaces.isEmpty()) {
            services.add(client.services().inAnyNamespace().inform(cast(onChange), 0));
            slices.add(client.discovery().v1().endpointSlices().inAnyNamespace().inform(cast(onChange), 0));
            pods.add(client.pods().inAnyNamespace().inform(cast(onChange), 0));
        } else {
            for (String ns : namespaces) {
                services.add(client.services().inNamespace(ns).inform(cast(onChange), 0));
                slices.add(client.discovery().v1().endpointSlices().inNamespace(ns).inform(cast(onChange), 0));
                pods.add(client.pods().inNamespace(ns).inform(cast(onChange), 0));
            }
        }
        LOG.infof("event=kubernetes_source_started namespaces=%s", namespaces.isEmpty() ? "all" : namespaces);
        changed();
    }

    @SuppressWarnings("unchecked")
    private static <T extends HasMetadata> ResourceEventHandler<T> cast(ResourceEventHandler<HasMetadata> h) {
        return (ResourceEventHandler<T>) (ResourceEventHandler<?>) h;
    }

    private void changed() {
        if (scheduled.compareAndSet(false, true)) {
            debounce.schedule(() -> {
                scheduled.set(false);
                try {
                    sink.accept(endpoints());
                } catch (RuntimeException e) {
                    LOG.errorf(e, "event=kubernetes_source_failed");
                }
            }, 100, TimeUnit.MILLISECONDS);
        }
    }

    /** The endpoints the informers' caches hold now. */
    public List<Endpoint> endpoints() {
        Map<String, Service> byName = new TreeMap<>();
        services.forEach(i -> i.getStore().list().forEach(s -> byName.put(s.getMetadata().getNamespace() + "/" + s.getMetadata().getName(), s)));
        Map<String, Pod> podByName = new java.util.HashMap<>();
        pods.forEach(i -> i.getStore().list().forEach(p -> podByName.put(p.getMetadata().getNamespace() + "/" + p.getMetadata().getName(), p)));
        var out = new ArrayList<Endpoint>();
        for (var informer : slices) {
            for (EndpointSlice slice : informer.getStore().list()) {
                String ns = slice.getMetadata().getNamespace();
                String svcName = Optional.ofNullable(slice.getMetadata().getLabels()).map(l -> l.get(SERVICE_NAME_LABEL)).orElse(null);
                Service svc = svcName == null ? null : byName.get(ns + "/" + svcName);
                if (svc == null || slice.getEndpoints() == null || slice.getPorts() == null || slice.getPorts().isEmpty()) {
                    continue;
                }
                String sliceVersion = label(slice, "version").or(() -> label(svc, "version")).orElse(null);
                String serviceSa = Optional.ofNullable(svc.getMetadata().getAnnotations()).map(a -> a.get(SERVICE_ACCOUNT_ANNOTATION)).orElse("default");
                for (var ep : slice.getEndpoints()) {
                    if (ep.getAddresses() == null || ep.getAddresses().isEmpty()) {
                        continue;
                    }
                    Pod pod = ep.getTargetRef() == null || ep.getTargetRef().getName() == null
                            || (ep.getTargetRef().getKind() != null && !ep.getTargetRef().getKind().equals("Pod")) ? null
                            : podByName.get(ns + "/" + ep.getTargetRef().getName());
                    String version = pod == null ? sliceVersion : label(pod, "version").orElse(sliceVersion);
                    String sa = pod != null && pod.getSpec() != null && pod.getSpec().getServiceAccountName() != null
                            ? pod.getSpec().getServiceAccountName() : serviceSa;
                    String identity = trustDomain == null ? "" : "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa;
                    String address = ep.getAddresses().get(0);
                    String base = ep.getTargetRef() != null && ep.getTargetRef().getName() != null ? ep.getTargetRef().getName() : address;
                    boolean ready = ep.getConditions() == null || ep.getConditions().getReady() == null || ep.getConditions().getReady();
                    for (EndpointPort port : slice.getPorts()) {
                        if (port.getPort() == null) {
                            continue;
                        }
                        String instance = slice.getPorts().size() == 1 ? base : base + ":" + port.getPort();
                        var labels = new TreeMap<String, String>();
                        if (version != null) {
                            labels.put("version", version);
                        }
                        int servicePort = servicePort(svc, port);
                        if (servicePort != MeshNames.DEFAULT_SERVICE_PORT) {
                            labels.put(MeshNames.SERVICE_PORT_LABEL, Integer.toString(servicePort));
                        }
                        out.add(new Endpoint(ns + "/" + svcName, instance, cluster, address, port.getPort(), protocol(port), Map.copyOf(labels), region,
                                ep.getZone() != null ? ep.getZone() : zone, ready, 1, identity));
                    }
                }
            }
        }
        out.sort(Comparator.comparing(Endpoint::service).thenComparing(Endpoint::instance));
        return out;
    }

    private static Optional<String> label(HasMetadata o, String key) {
        return Optional.ofNullable(o.getMetadata().getLabels()).map(l -> l.get(key));
    }

    /**
     * The Service port a slice's port serves: the Service's port of the same name (a slice names its
     * ports after the Service's, and gives the target port's number); {@value MeshNames#DEFAULT_SERVICE_PORT}
     * when the Service has no such port (it changed since the slice was written).
     */
    static int servicePort(Service svc, EndpointPort port) {
        String name = port.getName() == null ? "" : port.getName();
        if (svc.getSpec() != null && svc.getSpec().getPorts() != null) {
            for (var sp : svc.getSpec().getPorts()) {
                if (name.equals(sp.getName() == null ? "" : sp.getName()) && sp.getPort() != null) {
                    return sp.getPort();
                }
            }
        }
        return MeshNames.DEFAULT_SERVICE_PORT;
    }

    static String protocol(EndpointPort port) {
        String app = port.getAppProtocol();
        if (app != null) {
            switch (app) {
                case "http", "https" -> {
                    return "http";
                }
                case "http2", "h2c", "kubernetes.io/h2c" -> {
                    return "http2";
                }
                case "grpc" -> {
                    return "grpc";
                }
                default -> {
                    return "tcp";
                }
            }
        }
        String name = port.getName() == null ? "" : port.getName();
        for (String p : List.of("http2", "grpc", "http", "tcp")) {
            if (name.equals(p) || name.startsWith(p + "-")) {
                return p;
            }
        }
        return "tcp";
    }

    @Override
    public void close() {
        services.forEach(SharedIndexInformer::close);
        slices.forEach(SharedIndexInformer::close);
        pods.forEach(SharedIndexInformer::close);
        debounce.shutdownNow();
    }
}
