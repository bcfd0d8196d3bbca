package dev.isthmus.proxy;

import dev.isthmus.proxy.admin.AdminServer;
import dev.isthmus.proxy.config.Settings;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What every proxy process shares: its settings, event loops, meter registry and admin endpoint,
 * and an orderly shutdown on SIGTERM (resources closed in reverse order of opening).
 */
public final class ProxyProcess {

    private static final Logger log = LoggerFactory.getLogger(ProxyProcess.class);

    private final String app;
    private final Settings settings;
    private final EventLoops loops;
    private final PrometheusMeterRegistry meters = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final List<AutoCloseable> resources = new ArrayList<>();
    private final CountDownLatch stopped = new CountDownLatch(1);

    public ProxyProcess(String app, Settings settings) {
        this.app = app;
        this.settings = settings;
        this.loops = EventLoops.create(app, settings.port("io-threads", 0));
        new JvmMemoryMetrics().bindTo(meters);
        new JvmThreadMetrics().bindTo(meters);
        new ProcessorMetrics().bindTo(meters);
    }

    public Settings settings() {
        return settings;
    }

    public EventLoops loops() {
        return loops;
    }

    public PrometheusMeterRegistry meters() {
        return meters;
    }

    /** Registers a resource to close at shutdown, before the ones registered earlier. */
    public <T extends AutoCloseable> T own(T resource) {
        resources.add(resource);
        return resource;
    }

    /** Binds the admin port ({@code admin} setting, default 127.0.0.1:15000). */
    public AdminServer startAdmin(BooleanSupplier ready, Supplier<String> configDump) throws InterruptedException {
        var address = settings.address("admin", "127.0.0.1:" + dev.isthmus.api.names.Ports.PROXY_ADMIN);
        var admin = own(AdminServer.start(loops, address, meters, ready, configDump));
        log.info("event=admin_started app={} address={}", app, admin.address());
        return admin;
    }

    /** Blocks until SIGTERM/SIGINT, then closes everything. */
    public void awaitShutdown() throws InterruptedException {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log.info("event=shutdown app={}", app);
            for (int i = resources.size() - 1; i >= 0; i--) {
                try {
                    resources.get(i).close();
                } catch (Exception e) {
                    log.warn("event=close_failed app={} resource={} cause={}", app, resources.get(i), e.toString());
                }
            }
            loops.close();
            stopped.countDown();
        }, app + "-shutdown"));
        stopped.await();
    }
}
