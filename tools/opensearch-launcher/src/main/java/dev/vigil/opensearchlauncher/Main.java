package dev.vigil.opensearchlauncher;

import java.io.IOException;
import java.io.InputStream;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Starts one OpenSearch node in this JVM for Vigil's tests.
 *
 * <p>Arguments are node settings as {@code key=value} (path.home, http.port, …); they
 * override the defaults below. The node runs until its standard input reaches EOF (the
 * test that started it closed the pipe or died), then closes and the JVM exits, so a
 * killed test never leaves a node behind.
 */
public final class Main {
    /** The node with the modules a stock distribution loads from modules/, given as classes. */
    static final class LauncherNode extends Node {
        LauncherNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder b = Settings.builder()
            .put("cluster.name", "vigil-test")
            .put("node.name", "vigil-test-0")
            .put("network.host", "127.0.0.1")
            .put("discovery.type", "single-node")
            .put("transport.port", "0")
            .put("http.port", "9200")
            // One node holds every shard: replicas would keep the health yellow.
            .put("cluster.routing.allocation.disk.threshold_enabled", "false");
        for (String a : args) {
            int eq = a.indexOf('=');
            if (eq <= 0) {
                System.err.println("opensearch-launcher: argument " + a + " is not key=value");
                System.exit(2);
            }
            b.put(a.substring(0, eq), a.substring(eq + 1));
        }
        Settings settings = b.build();
        if (settings.get("path.home") == null) {
            System.err.println("opensearch-launcher: path.home=DIR is required");
            System.exit(2);
        }
        LogConfigurator.registerErrorListener();
        LogConfigurator.configureWithoutConfig(settings);
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> settings.get("node.name"));
        Node node = new LauncherNode(env, List.of(Netty4Plugin.class, MapperExtrasPlugin.class, CommonAnalysisPlugin.class));
        node.start();
        System.out.println("opensearch-launcher: started");
        System.out.flush();

        waitForEOF(System.in);
        node.close();
        node.awaitClose(10, TimeUnit.SECONDS);
        System.exit(0);
    }

    private static void waitForEOF(InputStream in) {
        byte[] buf = new byte[256];
        try {
            while (in.read(buf) >= 0) {
                // Anything written is ignored; only EOF matters.
            }
        } catch (IOException e) {
            // A broken pipe means the same as EOF: the parent is gone.
        }
    }
}
