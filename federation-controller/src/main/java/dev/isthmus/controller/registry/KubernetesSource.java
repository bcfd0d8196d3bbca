package dev.isthmus.controller.registry;

import dev.isthmus.controller.config.ControllerConfig;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.List;
import org.jboss.logging.Logger;

/**
 * Starts the Kubernetes registry source ({@link KubernetesEndpoints}) when
 * {@code isthmus.registry.kubernetes.enabled} is true, with the in-cluster service account or the
 * kubeconfig the fabric8 client finds. Its endpoints replace the {@code kubernetes} source of the
 * {@link LocalRegistry} on every change.
 */
@ApplicationScoped
public class KubernetesSource {

    private static final Logger LOG = Logger.getLogger(KubernetesSource.class);

    private final ControllerConfig config;
    private final LocalRegistry registry;
    private KubernetesClient client;
    private KubernetesEndpoints endpoints;

    public KubernetesSource(ControllerConfig config, LocalRegistry registry) {
        this.config = config;
        this.registry = registry;
    }

    void start(@Observes StartupEvent event) {
        var k8s = config.registry().kubernetes();
        if (!k8s.enabled()) {
            return;
        }
        client = new KubernetesClientBuilder().build();
        LOG.infof("event=kubernetes_client master=%s", client.getMasterUrl());
        String cluster = config.cluster().name();
        endpoints = new KubernetesEndpoints(client, k8s.namespaces().orElse(List.of()), cluster,
                config.cluster().region().orElse(cluster), config.cluster().zone(),
                k8s.trustDomain().orElse(cluster + "." + config.federation() + ".isthmus"),
                list -> registry.replaceSource("kubernetes", list));
        endpoints.start();
    }

    void stop(@Observes ShutdownEvent event) {
        if (endpoints != null) {
            endpoints.close();
        }
        if (client != null) {
            client.close();
        }
    }
}
