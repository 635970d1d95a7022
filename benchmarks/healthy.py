"""False-alarm benchmark: healthy, well-tuned Keras examples through gradtrace.fit.

    python benchmarks/healthy.py                     # all 8 examples, 1 run each (~3-4 min, 2 CPUs)
    python benchmarks/healthy.py --only lstm_weather --only transformer_text
    python benchmarks/healthy.py --runs 3            # 3 runs each, seeds 0, 1, 2

Each example is written in the shape of one of Keras' own keras.io examples
(the same layers, optimiser, learning rate, loss and batch size; our own code,
keras.io only the reference) and run as a new user would run it, with
`gradtrace.fit` in place of `model.fit`, on offline data of the same shape and
scale: the real MNIST test split (../shared/data/mnist) where the example uses
MNIST, otherwise generated data that the model can learn. Nothing is wrong with
any of them, so every finding is a false alarm.

Per example and run it prints the keras.io source, the wall time of the fit,
the optimizer steps, the loss (and validation loss / metric) of the first and
last epoch, so a reader sees it trains, and every finding as kind@step
(layer) with its message. The last line counts the findings over all runs:
"findings on healthy examples: X in Y runs"; the target is zero. Timing kinds
(slow_step, input_bound, retracing) count too, but are shown apart: they
depend on this machine's load.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_KINDS = {"slow_step", "input_bound", "retracing"}


@dataclass
class Example:
    name: str
    url: str  # the keras.io example it follows
    what: str  # one line: model and data
    build: Callable[[int], Spec]


@dataclass
class Spec:
    """What `gradtrace.fit(model, x, y, **fit)` gets."""

    model: Any
    x: Any
    y: Any = None
    fit: dict = field(default_factory=dict)


EXAMPLES: dict[str, Example] = {}


def example(name: str, url: str, what: str):
    def register(build):
        EXAMPLES[name] = Example(name, url, what, build)
        return build

    return register


# --------------------------------------------------------------------------
# 1. Simple MNIST convnet
# --------------------------------------------------------------------------


@example(
    "mnist_convnet",
    "https://keras.io/examples/vision/mnist_convnet/",
    "Conv2D 32/64 + MaxPool, Dropout 0.5, softmax 10; real MNIST (6000 test-split "
    "images), adam, batch 128, 2 epochs",
)
def mnist_convnet(seed: int) -> Spec:
    import keras
    import numpy as np

    from benchmarks.realworld import data

    x, y = data.mnist()
    pick = np.random.default_rng(seed).permutation(len(x))[:6000]
    x = x[pick].astype("float32") / 255  # scale images to the [0, 1] range
    x = np.expand_dims(x, -1)  # (N, 28, 28, 1)
    y = keras.utils.to_categorical(y[pick], 10)

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Spec(model, x, y, dict(batch_size=128, epochs=2, validation_split=0.1))


# --------------------------------------------------------------------------
# 2. Imbalanced classification: credit card fraud detection
# --------------------------------------------------------------------------


@example(
    "imbalanced_fraud",
    "https://keras.io/examples/structured_data/imbalanced_classification/",
    "Dense 256x3 + Dropout 0.3, sigmoid; 100k rows x 30 features, 0.3% positives, "
    "class_weight 1/count, adam 1e-2, batch 2048, 3 epochs",
)
def imbalanced_fraud(seed: int) -> Spec:
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    n, pos_rate = 100_000, 0.003
    targets = (rng.random(n) < pos_rate).astype("float32")
    # like the Kaggle data: Time (seconds over two days), 28 PCA components, Amount
    t = np.sort(rng.uniform(0, 172_792, n))
    v = rng.normal(0, 1, (n, 28)) * np.linspace(2.0, 0.3, 28)
    amount = rng.lognormal(3.0, 1.5, n)
    # fraud: shifted in a handful of components, larger amounts, with overlap
    shift = np.zeros(28)
    shift[[0, 2, 3, 9, 11, 13, 15, 16]] = [-2.5, -3.0, 2.5, -2.0, 2.0, -3.0, -1.5, -2.0]
    pos = targets == 1
    v[pos] += shift * rng.uniform(0.3, 1.5, (pos.sum(), 1))
    amount[pos] *= rng.uniform(1.0, 4.0, pos.sum())
    features = np.column_stack([t, v, amount]).astype("float32")

    num_val = int(n * 0.2)
    train_x, val_x = features[:-num_val], features[-num_val:]
    train_y, val_y = targets[:-num_val], targets[-num_val:]
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    train_x = (train_x - mean) / std
    val_x = (val_x - mean) / std

    counts = np.bincount(train_y.astype(int), minlength=2)
    weight_for_0, weight_for_1 = 1.0 / counts[0], 1.0 / counts[1]

    model = keras.Sequential(
        [
            keras.Input(shape=train_x.shape[-1:]),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="binary_crossentropy",
        metrics=[keras.metrics.Recall(name="recall")],
    )
    return Spec(
        model,
        train_x,
        train_y,
        dict(
            batch_size=2048,
            epochs=3,
            validation_data=(val_x, val_y),
            class_weight={0: weight_for_0, 1: weight_for_1},
        ),
    )


# --------------------------------------------------------------------------
# 3. Timeseries forecasting for weather prediction
# --------------------------------------------------------------------------


@example(
    "lstm_weather",
    "https://keras.io/examples/timeseries/timeseries_weather_forecasting/",
    "LSTM(32) -> Dense(1), mse, adam 1e-3; hourly 7-feature series, 120-step "
    "windows -> temperature 12 h ahead, timeseries_dataset_from_array, batch 256, "
    "3 epochs",
)
def lstm_weather(seed: int) -> Spec:
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    hours = 9000
    h = np.arange(hours)
    day = 2 * np.pi * h / 24
    year = 2 * np.pi * (h + rng.uniform(0, 8766)) / 8766

    def ar1(scale, phi=0.97):  # slowly wandering weather noise
        e = rng.normal(0, scale, hours)
        out = np.empty(hours)
        out[0] = e[0]
        for i in range(1, hours):
            out[i] = phi * out[i - 1] + e[i]
        return out

    temp = 9 - 9 * np.cos(year) - 4 * np.cos(day - 0.5) + ar1(0.6)
    pressure = 990 + 3 * np.cos(year) + ar1(0.8, 0.99) - 0.1 * temp
    svp = 6.1 * np.exp(17.6 * temp / (temp + 243.5))  # saturation vapour pressure
    rh = np.clip(75 + 12 * np.cos(day - 0.5) + ar1(2.0), 20, 100)
    vp = svp * rh / 100
    vpd = svp - vp  # vapour pressure deficit
    sh = 622 * vp / pressure  # specific humidity (g/kg)
    rho = 1.29e5 * pressure / 1013 / (273.15 + temp) / 100  # air density (g/m^3)
    wind = np.abs(2 + 1.5 * np.sin(day) + ar1(0.3, 0.9))
    features = np.column_stack([pressure, temp, svp, vpd, sh, rho, wind])

    train_split = int(0.8 * hours)
    mean = features[:train_split].mean(axis=0)
    std = features[:train_split].std(axis=0)
    features = ((features - mean) / std).astype("float32")

    past, future, batch_size = 120, 12, 256
    train, val = features[:train_split], features[train_split:]

    def windows(part):
        # x: `past` hours of all features; y: temperature `future` hours later
        x = part[: len(part) - past - future]
        y = part[past + future :, 1:2]
        return keras.utils.timeseries_dataset_from_array(
            x, y, sequence_length=past, batch_size=batch_size, seed=seed
        )

    inputs = keras.Input(shape=(past, features.shape[1]))
    lstm_out = keras.layers.LSTM(32)(inputs)
    outputs = keras.layers.Dense(1)(lstm_out)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
    return Spec(
        model, windows(train), None, dict(epochs=3, validation_data=windows(val))
    )


# --------------------------------------------------------------------------
# 4. Text classification with Transformer
# --------------------------------------------------------------------------


def _transformer_layers():
    import keras

    class TransformerBlock(keras.layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kw):
            super().__init__(**kw)
            self.att = keras.layers.MultiHeadAttention(
                num_heads=num_heads, key_dim=embed_dim
            )
            self.ffn = keras.Sequential(
                [
                    keras.layers.Dense(ff_dim, activation="relu"),
                    keras.layers.Dense(embed_dim),
                ]
            )
            self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = keras.layers.Dropout(rate)
            self.dropout2 = keras.layers.Dropout(rate)

        def call(self, inputs, training=False):
            attn = self.att(inputs, inputs)
            attn = self.dropout1(attn, training=training)
            out1 = self.layernorm1(inputs + attn)
            ffn = self.dropout2(self.ffn(out1), training=training)
            return self.layernorm2(out1 + ffn)

    class TokenAndPositionEmbedding(keras.layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim, **kw):
            super().__init__(**kw)
            self.token_emb = keras.layers.Embedding(vocab_size, embed_dim)
            self.pos_emb = keras.layers.Embedding(maxlen, embed_dim)

        def call(self, x):
            maxlen = keras.ops.shape(x)[-1]
            positions = keras.ops.arange(0, maxlen, 1)
            return self.token_emb(x) + self.pos_emb(positions)

    return TransformerBlock, TokenAndPositionEmbedding


@example(
    "transformer_text",
    "https://keras.io/examples/nlp/text_classification_with_transformer/",
    "token+position Embedding, MultiHeadAttention 2 heads, FFN 32, pooling, "
    "Dense 20 relu, softmax 2; 5000 IMDB-like token reviews (vocab 20000, "
    "maxlen 200), adam, batch 32, 2 epochs",
)
def transformer_text(seed: int) -> Spec:
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab_size, maxlen, n = 20000, 200, 5000
    # IMDB-like: 1 = start, 2 = out of vocabulary, words from 3 on by frequency
    ranks = np.arange(3, vocab_size)
    p = 1.0 / (ranks - 2) ** 1.05
    p /= p.sum()
    sentiment = rng.choice(np.arange(100, 2000), size=120, replace=False)
    positive, negative = sentiment[:60], sentiment[60:]
    labels = rng.integers(0, 2, n)
    reviews = []
    for label in labels:
        length = int(np.clip(rng.lognormal(np.log(170), 0.5), 20, 600))
        words = rng.choice(ranks, size=length, p=p)
        own, other = (positive, negative) if label == 1 else (negative, positive)
        k_own, k_other = rng.poisson(0.03 * length) + 1, rng.poisson(0.01 * length)
        at = rng.choice(length, size=min(length, k_own + k_other), replace=False)
        words[at[:k_own]] = rng.choice(own, size=len(at[:k_own]))
        words[at[k_own:]] = rng.choice(other, size=len(at[k_own:]))
        reviews.append([1, *words.tolist()])
    x = keras.utils.pad_sequences(reviews, maxlen=maxlen)
    n_val = 1000
    x_train, y_train = x[n_val:], labels[n_val:]
    x_val, y_val = x[:n_val], labels[:n_val]

    TransformerBlock, TokenAndPositionEmbedding = _transformer_layers()
    embed_dim, num_heads, ff_dim = 32, 2, 32
    inputs = keras.Input(shape=(maxlen,))
    h = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)(inputs)
    h = TransformerBlock(embed_dim, num_heads, ff_dim)(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    h = keras.layers.Dropout(0.1)(h)
    h = keras.layers.Dense(20, activation="relu")(h)
    h = keras.layers.Dropout(0.1)(h)
    outputs = keras.layers.Dense(2, activation="softmax")(h)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return Spec(
        model,
        x_train,
        y_train,
        dict(batch_size=32, epochs=2, validation_data=(x_val, y_val)),
    )


# --------------------------------------------------------------------------
# 5. Convolutional autoencoder for image denoising
# --------------------------------------------------------------------------


@example(
    "denoising_autoencoder",
    "https://keras.io/examples/vision/autoencoder/",
    "Conv2D 32 + MaxPool x2, Conv2DTranspose 32 x2, Conv2D 1 sigmoid, "
    "binary_crossentropy; real MNIST + gaussian noise 0.4 (4000 images), adam, "
    "batch 128, 2 epochs",
)
def denoising_autoencoder(seed: int) -> Spec:
    import keras
    import numpy as np

    from benchmarks.realworld import data

    rng = np.random.default_rng(seed)
    x, _ = data.mnist()
    pick = rng.permutation(len(x))[:4500]
    clean = np.reshape(x[pick].astype("float32") / 255.0, (len(pick), 28, 28, 1))
    noisy = np.clip(clean + 0.4 * rng.normal(0.0, 1.0, clean.shape), 0.0, 1.0)
    noisy = noisy.astype("float32")
    train_noisy, val_noisy = noisy[:4000], noisy[4000:]
    train_clean, val_clean = clean[:4000], clean[4000:]

    inputs = keras.Input(shape=(28, 28, 1))
    # encoder
    h = keras.layers.Conv2D(32, (3, 3), activation="relu", padding="same")(inputs)
    h = keras.layers.MaxPooling2D((2, 2), padding="same")(h)
    h = keras.layers.Conv2D(32, (3, 3), activation="relu", padding="same")(h)
    h = keras.layers.MaxPooling2D((2, 2), padding="same")(h)
    # decoder
    h = keras.layers.Conv2DTranspose(
        32, (3, 3), strides=2, activation="relu", padding="same"
    )(h)
    h = keras.layers.Conv2DTranspose(
        32, (3, 3), strides=2, activation="relu", padding="same"
    )(h)
    outputs = keras.layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return Spec(
        model,
        train_noisy,
        train_clean,
        dict(
            batch_size=128,
            epochs=2,
            shuffle=True,
            validation_data=(val_noisy, val_clean),
        ),
    )


# --------------------------------------------------------------------------
# 6. Structured data classification from scratch (Normalization layers)
# --------------------------------------------------------------------------


@example(
    "structured_normalization",
    "https://keras.io/examples/structured_data/structured_data_classification_from_scratch/",
    "dict of raw numeric features (age, income ~1e4..1e5, ...), one Normalization "
    "adapted per feature + IntegerLookup one-hot, Dense 32 relu, Dropout 0.5, "
    "sigmoid; 4000 rows, adam, batch 32, 3 epochs",
)
def structured_normalization(seed: int) -> Spec:
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    n = 4000
    cols = {
        "age": rng.integers(18, 80, n).astype("float32"),
        "income": rng.lognormal(np.log(45_000), 0.5, n).astype("float32"),
        "loan_amount": rng.lognormal(np.log(12_000), 0.8, n).astype("float32"),
        "years_employed": rng.gamma(2.0, 4.0, n).astype("float32"),
        "open_accounts": rng.poisson(5, n).astype("float32"),
        "region": rng.integers(1, 6, n).astype("int64"),
    }

    def z(a):
        return (a - a.mean()) / a.std()

    logit = (
        -1.2 * z(np.log(cols["income"]))
        + 1.5 * z(np.log(cols["loan_amount"]))
        - 0.6 * z(cols["years_employed"])
        - 0.4 * z(cols["age"])
        + 0.3 * z(cols["open_accounts"])
        + np.array([0.0, -0.8, 0.0, 0.5, 0.9, -0.5])[cols["region"]]
        - 0.5
    )
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("float32")

    n_val = int(0.2 * n)
    train = {k: v[n_val:, None] for k, v in cols.items()}
    val = {k: v[:n_val, None] for k, v in cols.items()}
    y_train, y_val = target[n_val:], target[:n_val]

    inputs, encoded = [], []
    for name in ("age", "income", "loan_amount", "years_employed", "open_accounts"):
        inp = keras.Input(shape=(1,), name=name)
        norm = keras.layers.Normalization()
        norm.adapt(train[name])
        inputs.append(inp)
        encoded.append(norm(inp))
    region = keras.Input(shape=(1,), name="region", dtype="int64")
    lookup = keras.layers.IntegerLookup(output_mode="one_hot")
    lookup.adapt(train["region"])
    inputs.append(region)
    encoded.append(lookup(region))

    h = keras.layers.concatenate(encoded)
    h = keras.layers.Dense(32, activation="relu")(h)
    h = keras.layers.Dropout(0.5)(h)
    output = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, output)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return Spec(
        model,
        train,
        y_train,
        dict(batch_size=32, epochs=3, validation_data=(val, y_val)),
    )


# --------------------------------------------------------------------------
# 7. Collaborative filtering for movie recommendations
# --------------------------------------------------------------------------


def _recommender(num_users, num_movies, embedding_size):
    import keras
    from keras import ops

    class RecommenderNet(keras.Model):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.user_embedding = keras.layers.Embedding(
                num_users,
                embedding_size,
                embeddings_initializer="he_normal",
                embeddings_regularizer=keras.regularizers.l2(1e-6),
            )
            self.user_bias = keras.layers.Embedding(num_users, 1)
            self.movie_embedding = keras.layers.Embedding(
                num_movies,
                embedding_size,
                embeddings_initializer="he_normal",
                embeddings_regularizer=keras.regularizers.l2(1e-6),
            )
            self.movie_bias = keras.layers.Embedding(num_movies, 1)

        def call(self, inputs):
            user_vector = self.user_embedding(inputs[:, 0])
            user_bias = self.user_bias(inputs[:, 0])
            movie_vector = self.movie_embedding(inputs[:, 1])
            movie_bias = self.movie_bias(inputs[:, 1])
            # one dot product per (user, movie) row
            dot = ops.sum(user_vector * movie_vector, axis=1, keepdims=True)
            return ops.sigmoid(dot + user_bias + movie_bias)

    return RecommenderNet()


@example(
    "collaborative_filtering",
    "https://keras.io/examples/structured_data/collaborative_filtering_movielens/",
    "subclassed model, user/movie Embeddings 50 + biases, dot, sigmoid, "
    "binary_crossentropy on ratings scaled to [0, 1]; 50k MovieLens-like ratings "
    "(610 users, 3000 movies), Adam 1e-3, batch 64, 2 epochs",
)
def collaborative_filtering(seed: int) -> Spec:
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    num_users, num_movies, n, k = 610, 3000, 50_000, 8
    user_taste = rng.normal(0, 1, (num_users, k))
    movie_traits = rng.normal(0, 1, (num_movies, k))
    user_mood = rng.normal(0, 0.4, num_users)
    movie_quality = rng.normal(0, 0.5, num_movies)
    # a few very active users, popular movies rated most (as in MovieLens)
    users = rng.choice(num_users, n, p=rng.dirichlet(np.full(num_users, 0.5)))
    movies = rng.choice(num_movies, n, p=rng.dirichlet(np.full(num_movies, 0.3)))
    score = (
        3.5
        + user_mood[users]
        + movie_quality[movies]
        + 0.25 * np.sum(user_taste[users] * movie_traits[movies], axis=1)
        + rng.normal(0, 0.4, n)
    )
    ratings = np.clip(np.round(score * 2) / 2, 0.5, 5.0)
    min_rating, max_rating = ratings.min(), ratings.max()
    x = np.column_stack([users, movies]).astype("int64")
    y = ((ratings - min_rating) / (max_rating - min_rating)).astype("float32")
    train_n = int(0.9 * n)

    model = _recommender(num_users, num_movies, 50)
    model.compile(
        loss=keras.losses.BinaryCrossentropy(),
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
    )
    return Spec(
        model,
        x[:train_n],
        y[:train_n],
        dict(
            batch_size=64,
            epochs=2,
            validation_data=(x[train_n:], y[train_n:]),
        ),
    )


# --------------------------------------------------------------------------
# 8. ResNet on CIFAR-10 (small)
# --------------------------------------------------------------------------


@example(
    "resnet_cifar",
    # Keras' own ResNet-20 example (from before the examples moved to keras.io,
    # which has no ResNet-on-CIFAR page)
    "https://github.com/keras-team/keras/blob/2.3.1/examples/cifar10_resnet.py",
    "ResNet v1-8 (3 stages of 1 residual block, 16/32/64 filters, "
    "Conv-BatchNorm-ReLU, he_normal, l2 1e-4), GlobalAveragePooling, softmax 10; "
    "3000 CIFAR-like 32x32x3 images, pixel-mean subtracted, adam 1e-3, batch 64, "
    "2 epochs",
)
def resnet_cifar(seed: int) -> Spec:
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    n, n_val = 3500, 500
    labels = rng.integers(0, 10, n)
    # each class: its own colour cast and stripe orientation/frequency, placed on
    # a textured background with a random phase and brightness
    yy, xx = np.mgrid[0:32, 0:32].astype("float32")
    angle = np.linspace(0, np.pi, 10, endpoint=False)
    freq = np.array([0.25, 0.45, 0.3, 0.5, 0.35, 0.25, 0.45, 0.3, 0.5, 0.35])
    tint = rng.uniform(0.3, 1.0, (10, 3))
    img = np.empty((n, 32, 32, 3), "float32")
    for i, c in enumerate(labels):
        a = angle[c] + rng.normal(0, 0.15)
        phase = rng.uniform(0, 2 * np.pi)
        stripes = np.sin(freq[c] * (np.cos(a) * xx + np.sin(a) * yy) + phase)
        cy, cx = rng.uniform(8, 24, 2)
        blob = np.exp(
            -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(6, 10) ** 2)
        )
        pattern = 0.5 + 0.35 * stripes * (0.4 + 0.6 * blob)
        img[i] = pattern[..., None] * tint[c] * rng.uniform(0.7, 1.2)
    img += rng.normal(0, 0.12, img.shape)
    images = np.clip(img * 255, 0, 255).astype("uint8")

    # as the Keras example prepares CIFAR-10: /255, subtract the per-pixel mean
    x = images.astype("float32") / 255
    x_train, x_val = x[n_val:], x[:n_val]
    pixel_mean = x_train.mean(axis=0)
    x_train, x_val = x_train - pixel_mean, x_val - pixel_mean
    y = keras.utils.to_categorical(labels, 10)
    y_train, y_val = y[n_val:], y[:n_val]

    def resnet_layer(h, filters, kernel_size=3, strides=1, activation="relu", bn=True):
        h = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=keras.regularizers.l2(1e-4),
        )(h)
        if bn:
            h = keras.layers.BatchNormalization()(h)
        if activation is not None:
            h = keras.layers.Activation(activation)(h)
        return h

    inputs = keras.Input(shape=(32, 32, 3))
    h = resnet_layer(inputs, 16)
    for stage, filters in enumerate((16, 32, 64)):
        strides = 1 if stage == 0 else 2
        r = resnet_layer(h, filters, strides=strides)
        r = resnet_layer(r, filters, activation=None)
        if stage > 0:  # projection shortcut where the shape changes
            h = resnet_layer(h, filters, 1, strides, activation=None, bn=False)
        h = keras.layers.Activation("relu")(keras.layers.add([h, r]))
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(
        10, activation="softmax", kernel_initializer="he_normal"
    )(h)
    model = keras.Model(inputs, outputs)
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        metrics=["accuracy"],
    )
    return Spec(
        model,
        x_train,
        y_train,
        dict(batch_size=64, epochs=2, validation_data=(x_val, y_val)),
    )


# --------------------------------------------------------------------------


def run_one(ex: Example, seed: int) -> dict:
    """Builds the example with `seed` and trains it through gradtrace.fit."""
    import keras

    import gradtrace

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    spec = ex.build(seed)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as logdir:
        h = gradtrace.fit(
            spec.model,
            spec.x,
            spec.y,
            **spec.fit,
            verbose=0,
            logdir=logdir,
            config=gradtrace.Config(console=False),
        )
    return {
        "seconds": time.perf_counter() - t0,
        "build_seconds": build_s,
        "steps": len(h.step_times),
        "history": dict(h.history),
        "findings": list(h.findings),
    }


def _trend(history: dict) -> str:
    """'loss 0.71 -> 0.19, val_loss 0.25 -> 0.14, accuracy 0.78 -> 0.94, ...'
    (first and last epoch: the loss, then the first metric, each with its val_)."""
    metrics = [k for k in history if k != "loss" and not k.startswith("val_")]
    out = []
    for k in ["loss", *metrics[:1]]:
        for key in (k, "val_" + k):
            v = history.get(key)
            if v:
                out.append(f"{key} {v[0]:.4g} -> {v[-1]:.4g}")
    return ", ".join(out)


def _finding(f) -> str:
    where = f" ({f.layer})" if f.layer else ""
    timing = " [timing]" if f.kind in TIMING_KINDS else ""
    return f"{f.kind}@{f.step}{where}{timing}"


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only", action="append", choices=list(EXAMPLES), help="example name"
    )
    ap.add_argument(
        "--runs", type=int, default=1, help="runs per example (seeds 0..N-1)"
    )
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    print(
        "$ " + shlex.join(["python", "benchmarks/healthy.py", *(argv or [])]),
        flush=True,
    )

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    logging.getLogger("gradtrace").setLevel(logging.ERROR)

    names = args.only or list(EXAMPLES)
    total = timing = runs = 0
    flagged: dict[str, int] = {}
    t_all = time.perf_counter()
    for name in names:
        ex = EXAMPLES[name]
        print(f"\n{name}: {ex.what}\n  source: {ex.url}", flush=True)
        for seed in range(args.runs):
            res = run_one(ex, seed)
            runs += 1
            fs = res["findings"]
            total += len(fs)
            timing += sum(1 for f in fs if f.kind in TIMING_KINDS)
            if fs:
                flagged[name] = flagged.get(name, 0) + len(fs)
            print(
                f"  run {seed + 1} (seed {seed}): {res['seconds']:.1f} s fit "
                f"(+{res['build_seconds']:.1f} s data/model), {res['steps']} steps, "
                f"{_trend(res['history'])}",
                flush=True,
            )
            print("    findings: " + (", ".join(_finding(f) for f in fs) or "-"))
            for f in fs:
                print(f"      {f.kind}@{f.step}: {f.message}")
    secs = time.perf_counter() - t_all
    print(
        f"\nfindings on healthy examples: {total} in {runs} runs"
        + (
            f" ({timing} of them timing kinds, which depend on this machine's load)"
            if timing
            else ""
        )
        + (
            f"; on: {', '.join(f'{k} ({v})' for k, v in flagged.items())}"
            if flagged
            else ""
        )
        + f"; {secs:.0f} s"
    )
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
