package dev.isthmus.controller.api;

import dev.isthmus.controller.xds.XdsServer;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.util.List;
import org.eclipse.microprofile.openapi.annotations.Operation;

/** The proxies connected to this controller's xDS server: what each acknowledged, and its last rejection. */
@Path("/api/v1/xds/status")
@Produces(MediaType.APPLICATION_JSON)
public class XdsResource {

    private final XdsServer xds;

    public XdsResource(XdsServer xds) {
        this.xds = xds;
    }

    @GET
    @Operation(summary = "Proxies on the xDS server: type, service, acknowledged version per resource type, last NACK")
    public List<XdsServer.ProxyStatus> status() {
        return xds.status();
    }
}
