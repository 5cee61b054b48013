// Kafka readiness probe for tests/stack: one JVM doing a real round trip with kafka-clients
// (create topic __stack_ready if missing -> produce one record -> fetch that record back).
// Compiled by `tests/stack install` into .stack/kafka/ready/; run with the broker's lib/* on the classpath.
// Usage: java -cp '.stack/kafka/lib/*:.stack/kafka/ready' KafkaReady <bootstrap> [timeoutSeconds]
// Exit 0 = ready, 1 = not ready (reason on stderr).

import java.time.Duration;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class KafkaReady {
    static final String TOPIC = "__stack_ready";

    public static void main(String[] args) throws Exception {
        String bootstrap = args.length > 0 ? args[0] : "127.0.0.1:9092";
        int timeoutS = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);
        int ms = timeoutS * 1000;
        try {
            Properties a = new Properties();
            a.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            a.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, ms);
            a.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, ms);
            try (Admin admin = Admin.create(a)) {
                try {
                    admin.createTopics(List.of(new NewTopic(TOPIC, 1, (short) 1))).all().get(timeoutS, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) throw e;
                }
            }
            String value = "ready-" + System.nanoTime();
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.ACKS_CONFIG, "all");
            p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, ms);
            p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, ms);
            p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, Math.min(ms, 10000));
            p.put(ProducerConfig.LINGER_MS_CONFIG, 0);
            RecordMetadata md;
            try (KafkaProducer<String, String> producer =
                         new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                md = producer.send(new ProducerRecord<>(TOPIC, 0, null, value)).get(timeoutS, TimeUnit.SECONDS);
            }
            Properties c = new Properties();
            c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            c.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, Math.min(ms, 10000));
            TopicPartition tp = new TopicPartition(TOPIC, md.partition());
            try (KafkaConsumer<String, String> consumer =
                         new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
                consumer.assign(Collections.singletonList(tp));
                consumer.seek(tp, md.offset());
                while (System.nanoTime() < deadline) {
                    for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                        if (value.equals(r.value())) {
                            System.out.println("kafka round trip ok: " + TOPIC + "-" + md.partition() + "@" + md.offset());
                            return;
                        }
                    }
                }
            }
            System.err.println("kafka not ready: produced record not fetched back within " + timeoutS + "s");
            System.exit(1);
        } catch (Exception e) {
            System.err.println("kafka not ready: " + e);
            System.exit(1);
        }
    }
}
