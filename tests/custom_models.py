"""Models with their own `train_step`, written the way keras-io writes them.

Small on purpose (tests): a DCGAN-style GAN, a VAE, a WGAN-GP, a
distillation model and a model trained through a `LossScaleOptimizer`. Each
builder takes the knobs the tests plant faults with.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

IMG = (8, 8, 1)
LATENT = 4


def images(n=64, seed=0):
    """Blurry blobs in [0, 1], float32, shape (n, 8, 8, 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:8, :8]
    c = rng.uniform(2, 6, size=(n, 2))
    d = (yy[None] - c[:, :1, None]) ** 2 + (xx[None] - c[:, 1:, None]) ** 2
    return np.exp(-d / 4.0)[..., None].astype("float32")


# -- GAN ---------------------------------------------------------------------


def discriminator(dead_bias=0.0):
    return keras.Sequential(
        [
            keras.Input(IMG),
            layers.Conv2D(8, 3, strides=2, padding="same", name="conv1"),
            layers.LeakyReLU(0.2, name="lrelu"),
            layers.Flatten(name="flat"),
            layers.Dense(
                16,
                activation="relu",
                bias_initializer=keras.initializers.Constant(dead_bias),
                name="hidden",
            ),
            layers.Dense(1, name="score"),
        ],
        name="discriminator",
    )


def generator(depth=0, activation="relu"):
    """`depth` extra Dense layers of `activation` before the image head."""
    extra = [
        layers.Dense(16, activation=activation, name=f"deep{i}") for i in range(depth)
    ]
    return keras.Sequential(
        [
            keras.Input((LATENT,)),
            *extra,
            layers.Dense(4 * 4 * 8, activation="relu", name="project"),
            layers.Reshape((4, 4, 8), name="reshape"),
            layers.Conv2DTranspose(8, 4, strides=2, padding="same", name="up"),
            layers.LeakyReLU(0.2, name="lrelu"),
            layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="conv1"),
        ],
        name="generator",
    )


class GAN(keras.Model):
    """keras-io "DCGAN" shape: own compile, two optimizers, loss trackers."""

    def __init__(self, disc, gen, latent_dim=LATENT, seed=1337):
        super().__init__()
        self.latent_dim = latent_dim
        self.discriminator = disc
        self.generator = gen
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch = ops.shape(real_images)[0]
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        fake = self.generator(z)
        combined = ops.concatenate([fake, real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch, 1)), ops.zeros((batch, 1))], axis=0)
        labels += 0.05 * keras.random.uniform(
            ops.shape(labels), seed=self.seed_generator
        )
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(
            zip(grads, self.discriminator.trainable_weights)
        )
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            pred = self.discriminator(self.generator(z))
            g_loss = self.loss_fn(ops.zeros((batch, 1)), pred)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {
            "d_loss": self.d_loss_tracker.result(),
            "g_loss": self.g_loss_tracker.result(),
        }


def gan(seed=0, dead_bias=0.0, depth=0, activation="relu", lr=1e-3):
    keras.utils.set_random_seed(seed)
    m = GAN(discriminator(dead_bias), generator(depth, activation))
    m.compile(
        d_optimizer=keras.optimizers.Adam(lr),
        g_optimizer=keras.optimizers.Adam(lr),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return m


# -- VAE ---------------------------------------------------------------------


class Sampling(layers.Layer):
    """z = mean + sqrt(var) * eps. `log_var=False`: the encoder gives the
    variance itself (the planted bug: a linear unit can go negative)."""

    def __init__(self, log_var=True, **kw):
        super().__init__(**kw)
        self.log_var = log_var
        self.seed_generator = keras.random.SeedGenerator(7)

    def call(self, inputs):
        mean, v = inputs
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        std = ops.exp(0.5 * v) if self.log_var else ops.sqrt(v)
        return mean + std * eps


def encoder(log_var=True, var_bias=0.0):
    x = keras.Input((16,))
    h = layers.Dense(16, activation="relu", name="enc_hidden")(x)
    mean = layers.Dense(2, name="z_mean")(h)
    v = layers.Dense(
        2, bias_initializer=keras.initializers.Constant(var_bias), name="z_var"
    )(h)
    z = Sampling(log_var, name="sampling")([mean, v])
    return keras.Model(x, [mean, v, z], name="encoder")


def decoder():
    return keras.Sequential(
        [
            keras.Input((2,)),
            layers.Dense(16, activation="relu", name="dec_hidden"),
            layers.Dense(16, activation="sigmoid", name="dec_out"),
        ],
        name="decoder",
    )


class VAE(keras.Model):
    """keras-io "VAE" shape: loss trackers, a KL term, `self.optimizer`."""

    def __init__(self, enc, dec, log_var=True, **kw):
        super().__init__(**kw)
        self.encoder = enc
        self.decoder = dec
        self.log_var = log_var
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(
            name="reconstruction_loss"
        )
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [
            self.total_loss_tracker,
            self.reconstruction_loss_tracker,
            self.kl_loss_tracker,
        ]

    def train_step(self, data):
        if isinstance(data, tuple):
            data = data[0]
        with tf.GradientTape() as tape:
            mean, v, z = self.encoder(data)
            rec = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(
                    keras.losses.binary_crossentropy(data[..., None], rec[..., None]),
                    axis=1,
                )
            )
            log_var = v if self.log_var else ops.log(v)
            kl = -0.5 * (1 + log_var - ops.square(mean) - ops.exp(log_var))
            kl_loss = ops.mean(ops.sum(kl, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}


def vae(seed=0, log_var=True, var_bias=0.0):
    keras.utils.set_random_seed(seed)
    m = VAE(encoder(log_var, var_bias), decoder(), log_var=log_var)
    m.compile(optimizer=keras.optimizers.Adam(1e-3))
    return m


def vae_data(n=128, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(n, 16)) > 0.5).astype("float32")


# -- WGAN-GP -------------------------------------------------------------------


class WGANGP(keras.Model):
    """keras-io "WGAN-GP" shape: the critic is trained `d_steps` times per
    step, with a gradient penalty from a tape on the interpolated images
    (gradients with respect to inputs, never applied)."""

    def __init__(self, critic, gen, d_steps=3, gp_weight=10.0, seed=42):
        super().__init__()
        self.critic = critic
        self.generator = gen
        self.d_steps = d_steps
        self.gp_weight = gp_weight
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    def gradient_penalty(self, batch, real, fake):
        alpha = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator)
        interpolated = real + alpha * (fake - real)
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(interpolated)
            pred = self.critic(interpolated, training=True)
        grads = gp_tape.gradient(pred, [interpolated])[0]
        norm = ops.sqrt(ops.sum(ops.square(grads), axis=[1, 2, 3]))
        return ops.mean((norm - 1.0) ** 2)

    def train_step(self, real):
        if isinstance(real, tuple):
            real = real[0]
        batch = ops.shape(real)[0]
        for _ in range(self.d_steps):
            z = keras.random.normal((batch, LATENT), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                fake = self.generator(z, training=True)
                d_cost = ops.mean(self.critic(fake, training=True)) - ops.mean(
                    self.critic(real, training=True)
                )
                d_loss = d_cost + self.gp_weight * self.gradient_penalty(
                    batch, real, fake
                )
            grads = tape.gradient(d_loss, self.critic.trainable_variables)
            self.d_optimizer.apply_gradients(
                zip(grads, self.critic.trainable_variables)
            )
        z = keras.random.normal((batch, LATENT), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            g_loss = -ops.mean(
                self.critic(self.generator(z, training=True), training=True)
            )
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        return {"d_loss": d_loss, "g_loss": g_loss}


def wgan_gp(seed=0):
    keras.utils.set_random_seed(seed)
    critic = discriminator()
    m = WGANGP(critic, generator())
    m.compile(
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    )
    return m


# -- distillation --------------------------------------------------------------


class Distiller(keras.Model):
    """keras-io "knowledge distillation" shape: a frozen teacher, a student."""

    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(
        self,
        optimizer,
        metrics,
        student_loss_fn,
        distillation_loss_fn,
        alpha=0.1,
        temperature=3,
    ):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def train_step(self, data):
        x, y = data
        teacher_pred = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_pred = self.student(x, training=True)
            student_loss = self.student_loss_fn(y, student_pred)
            distillation_loss = self.distillation_loss_fn(
                ops.softmax(teacher_pred / self.temperature, axis=1),
                ops.softmax(student_pred / self.temperature, axis=1),
            ) * (self.temperature**2)
            loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
        grads = tape.gradient(loss, self.student.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables))
        for metric in self.metrics:
            if metric.name != "loss":
                metric.update_state(y, student_pred)
        self._loss_tracker.update_state(loss)
        return {m.name: m.result() for m in self.metrics}


def distiller(seed=0):
    keras.utils.set_random_seed(seed)

    def net(name, width):
        return keras.Sequential(
            [
                keras.Input((8,)),
                layers.Dense(width, activation="relu", name="dense1"),
                layers.Dense(3, name="logits"),
            ],
            name=name,
        )

    teacher = net("teacher", 32)
    teacher.trainable = False
    m = Distiller(net("student", 8), teacher)
    m.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),
    )
    return m


# -- a custom step through a LossScaleOptimizer --------------------------------


class ScaledStep(keras.Model):
    """A custom step as the Keras guide writes it, with loss scaling."""

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            pred = self(x, training=True)
            loss = ops.mean(ops.square(pred - y))
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self._loss_tracker.update_state(loss)
        return {"loss": self._loss_tracker.result()}


def scaled_step(seed=0):
    keras.utils.set_random_seed(seed)
    x = keras.Input((8,))
    h = layers.Dense(8, activation="relu", name="h")(x)
    m = ScaledStep(x, layers.Dense(1, name="o")(h))
    m.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.05)))
    return m
