package dev.isthmus.controller.registry;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.controller.config.ControllerConfig;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import org.jboss.logging.Logger;

/**
 * The static registry source: endpoints listed in a YAML or JSON file
 * ({@code isthmus.registry.static-file}), for workloads no sidecar registers (VMs, databases, a
 * legacy service). The file is re-read when its modification time or size changes. A file with any
 * error is refused as a whole, with the file, line and field in the log, and counted in
 * {@code isthmus_registry_static_file_errors_total}; the endpoints of the last good version stay.
 *
 * <pre>
 * endpoints:
 *   - service: shop/billing
 *     instance: billing-vm-1
 *     address: 10.0.0.12
 *     port: 8443
 *     protocol: http        # http, http2, grpc, tcp (default http)
 *     labels: {version: v1}
 *     zone: zone-b          # default: the cluster's zone
 * </pre>
 */
@ApplicationScoped
public class StaticFileSource {

    private static final Logger LOG = Logger.getLogger(StaticFileSource.class);

    /** A file that cannot be used, with where and why. */
    public static final class StaticFileException extends Exception {
        public StaticFileException(String message) {
            super(message);
        }
    }

    private final ControllerConfig config;
    private final LocalRegistry registry;
    private final MeterRegistry meters;
    private final ObjectMapper mapper = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);
    private volatile String seen = "";
    private volatile String lastError = "";

    public StaticFileSource(ControllerConfig config, LocalRegistry registry, MeterRegistry meters) {
        this.config = config;
        this.registry = registry;
        this.meters = meters;
    }

    void start(@Observes StartupEvent event) {
        config.registry().staticFile().ifPresent(f -> {
            LOG.infof("event=static_registry_source file=%s poll=%s", f, config.registry().staticFilePoll());
            poll();
        });
    }

    @Scheduled(every = "${isthmus.registry.static-file-poll:2s}", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void poll() {
        if (config.registry().staticFile().isEmpty()) {
            return;
        }
        Path file = config.registry().staticFile().get();
        String stamp;
        try {
            FileTime t = Files.getLastModifiedTime(file);
            stamp = t.toMillis() + ":" + Files.size(file);
        } catch (IOException e) {
            stamp = "missing";
        }
        if (stamp.equals(seen)) {
            return;
        }
        seen = stamp;
        try {
            List<EndpointSpec> specs = stamp.equals("missing") ? List.of() : read(file);
            var endpoints = new ArrayList<Endpoint>();
            specs.forEach(s -> endpoints.add(s.toEndpoint(config)));
            boolean changed = registry.replaceSource("static", endpoints);
            lastError = "";
            LOG.infof("event=static_registry_loaded file=%s endpoints=%d changed=%s%s", file, endpoints.size(), changed,
                    stamp.equals("missing") ? " (file missing: no static endpoints)" : "");
        } catch (StaticFileException e) {
            meters.counter("isthmus_registry_static_file_errors").increment();
            lastError = e.getMessage();
            LOG.errorf("event=static_registry_refused %s (the endpoints of the last good version stay)", e.getMessage());
        }
    }

    /** The last refusal's message, empty when the current file was accepted. */
    public String lastError() {
        return lastError;
    }

    /** Reads and checks a whole file; the exception names file, line and field of the first error. */
    public List<EndpointSpec> read(Path file) throws StaticFileException {
        String name = file.getFileName().toString();
        JsonFactory factory = name.endsWith(".json") ? mapper.getFactory() : new YAMLFactory();
        var out = new ArrayList<EndpointSpec>();
        var instances = new HashSet<String>();
        try (JsonParser p = factory.createParser(file.toFile())) {
            p.setCodec(mapper);
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new StaticFileException(file + ": line 1: expected a mapping with the key 'endpoints'");
            }
            boolean found = false;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonLocation at = p.currentTokenLocation();
                p.nextToken();
                if (!field.equals("endpoints")) {
                    throw new StaticFileException(file + ": line " + at.getLineNr() + ": unknown key '" + field + "'; the file has one key, 'endpoints'");
                }
                found = true;
                if (p.currentToken() == JsonToken.VALUE_NULL) {
                    continue;
                }
                if (p.currentToken() != JsonToken.START_ARRAY) {
                    throw new StaticFileException(file + ": line " + at.getLineNr() + ": 'endpoints' must be a list");
                }
                int index = 0;
                while (p.nextToken() != JsonToken.END_ARRAY) {
                    JsonLocation entryAt = p.currentTokenLocation();
                    String where = file + ": line " + entryAt.getLineNr() + ": endpoints[" + index + "]";
                    EndpointSpec spec;
                    try {
                        spec = p.readValueAs(EndpointSpec.class);
                    } catch (JsonProcessingException e) {
                        throw new StaticFileException(where + ": " + e.getOriginalMessage()
                                + (e.getLocation() != null ? " (line " + e.getLocation().getLineNr() + ")" : ""));
                    }
                    String problem = spec == null ? "is empty" : spec.problem();
                    if (problem != null) {
                        throw new StaticFileException(where + ": " + problem);
                    }
                    if (!instances.add(spec.instance())) {
                        throw new StaticFileException(where + ": field 'instance': '" + spec.instance() + "' is listed twice");
                    }
                    out.add(spec);
                    index++;
                }
            }
            if (!found) {
                throw new StaticFileException(file + ": the key 'endpoints' is missing");
            }
        } catch (JsonProcessingException e) {
            throw new StaticFileException(file + ": line " + (e.getLocation() == null ? "?" : e.getLocation().getLineNr()) + ": "
                    + e.getOriginalMessage());
        } catch (IOException e) {
            throw new StaticFileException(file + ": cannot be read: " + e.getMessage());
        }
        return out;
    }
}
