package dev.isthmus.api.names;

/**
 * A logical service, {@code namespace/name}. The same service name in two clusters is the same
 * service (namespace sameness).
 */
public record ServiceName(String namespace, String name) implements Comparable<ServiceName> {

    public ServiceName {
        DnsLabel.require("namespace", namespace);
        DnsLabel.require("service name", name);
    }

    /** Parses {@code namespace/name}. */
    public static ServiceName parse(String text) {
        int slash = text.indexOf('/');
        if (slash <= 0 || slash != text.lastIndexOf('/') || slash == text.length() - 1) {
            throw new IllegalArgumentException("service '" + text + "' is not of the form namespace/name");
        }
        return new ServiceName(text.substring(0, slash), text.substring(slash + 1));
    }

    /** The in-cluster host name, {@code name.namespace.svc.cluster.local}. */
    public String clusterLocalHost() {
        return name + "." + namespace + ".svc.cluster.local";
    }

    @Override
    public int compareTo(ServiceName o) {
        int c = namespace.compareTo(o.namespace);
        return c != 0 ? c : name.compareTo(o.name);
    }

    @Override
    public String toString() {
        return namespace + "/" + name;
    }
}
