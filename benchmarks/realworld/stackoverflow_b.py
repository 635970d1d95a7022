"""DeepLocalize Stack Overflow programs, rows 16-30 of DeepDiagnosis' Table 6.

Ported to Keras 3 from ``Benchmark/StackOverflow/<post>/{Buggy,Correct} {Code,Model}/``
of the DeepLocalize repository (Wardat-ISU/DeepLocalize). Published numbers and
patches: ``shared/data/deepdiagnosis/deeplocalize-stackoverflow.csv``.

Data is generated offline (seeded) with the shape, dtype, value range and label
structure of the files the programs read (summary statistics computed from those
files are embedded below; the files themselves are not copied), except MNIST,
which is the real test split via `data.mnist`. Keras 2 ``init='uniform'`` is
RandomUniform(-0.05, 0.05), ``init='normal'`` / ``'random_normal'`` is
RandomNormal(stddev=0.05); ``nb_epoch`` is ``epochs``; ``lr`` is
``learning_rate``; ``decay`` has no Keras 3 equivalent and is dropped.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from . import Program, Run, data

SO = "https://stackoverflow.com/questions/"


def _uniform():  # Keras 2 init='uniform'
    return keras.initializers.RandomUniform(-0.05, 0.05)


def _normal():  # Keras 2 init='normal' / kernel_initializer='random_normal'
    return keras.initializers.RandomNormal(stddev=0.05)


def _k2(name):
    """The Keras activation `name` with Keras 2's loss semantics.

    Keras 3 (TF backend) caches a softmax/sigmoid output's logits and every
    crossentropy uses them: binary_crossentropy on a softmax output, or
    categorical_crossentropy on a sigmoid output, silently computes the loss from
    the logits (a 1-unit softmax + binary_crossentropy then trains like a sigmoid).
    Keras 2 used the logits only for the matching pair (softmax + categorical,
    sigmoid + binary) and otherwise the clipped probabilities, which is what the
    published bugs ran. Copying the output drops the cached logits; the function
    keeps the activation's name."""
    fn = getattr(keras.activations, name)

    def act(x):
        return keras.ops.copy(fn(x))

    act.__name__ = name
    return act


def _one_hot(y, n):
    return np.eye(n, dtype="float32")[np.asarray(y, dtype=int)]


# --------------------------------------------------------------------------- data
# Iris (iris.data, 150 rows, 50 per class, sorted by class): per-class mean, std,
# min and max of the four features, from the file in the DeepLocalize repository.
_IRIS = [
    # mean, std, min, max
    (
        [5.006, 3.418, 1.464, 0.244],
        [0.349, 0.377, 0.172, 0.106],
        [4.3, 2.3, 1.0, 0.1],
        [5.8, 4.4, 1.9, 0.6],
    ),
    (
        [5.936, 2.770, 4.260, 1.326],
        [0.511, 0.311, 0.465, 0.196],
        [4.9, 2.0, 3.0, 1.0],
        [7.0, 3.4, 5.1, 1.8],
    ),
    (
        [6.588, 2.974, 5.552, 2.026],
        [0.629, 0.319, 0.546, 0.272],
        [4.9, 2.2, 4.5, 1.4],
        [7.9, 3.8, 6.9, 2.5],
    ),
]


def _iris(seed=0):
    """Iris-like features (150, 4) in centimetres (0.1..7.9, one decimal) and class ids."""
    r = data.rng(seed)
    xs, ys = [], []
    for c, (mu, sd, lo, hi) in enumerate(_IRIS):
        x = r.normal(mu, sd, size=(50, 4))
        xs.append(np.round(np.clip(x, lo, hi), 1))
        ys.append(np.full(50, c))
    return np.concatenate(xs).astype("float64"), np.concatenate(ys)


def _images(counts, size, seed):
    """Photo-like float images in [0, 1] (N, size, size, 3): smooth random
    patterns plus a weak class-dependent colour cast; labels in class order."""
    r = data.rng(seed)
    n = int(sum(counts))
    labels = np.repeat(np.arange(len(counts)), counts)
    coarse = r.uniform(0.0, 1.0, size=(n, size // 8, size // 8, 3))
    img = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    casts = r.uniform(-0.15, 0.15, size=(len(counts), 3))
    img = 0.7 * img + 0.15 + casts[labels][:, None, None, :]
    img = img + r.normal(0.0, 0.05, size=img.shape)
    return np.clip(img, 0.0, 1.0).astype("float32"), labels


def _shuffle(seed, *arrays):
    p = data.rng(seed).permutation(len(arrays[0]))
    return [a[p] for a in arrays]


# ---------------------------------------------------------------- SO 59278771
# Iris, 4-4-3 MLP. Buggy: raw features, sigmoid output with categorical
# crossentropy, nb_epoch=200, batch 5. Fix: MinMaxScaler, an extra Dense(8),
# softmax output; run by KerasClassifier (epochs=200, default batch 32) in a
# 10-fold cross_val_score (here: one fit on all 150 rows).
# Cut: buggy 200 -> 10 epochs (300 steps); fixed 200 -> 30 epochs (150 steps).


def so59278771_buggy():
    keras.utils.set_random_seed(0)
    x, y = _iris(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(4, kernel_initializer=_normal()),
            keras.layers.Activation("relu"),
            keras.layers.Dense(3, kernel_initializer=_normal()),
            keras.layers.Activation(_k2("sigmoid")),  # Keras 2 semantics, see _k2
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(model, x, _one_hot(y, 3), fit=dict(epochs=10, batch_size=5))


def so59278771_fixed():
    keras.utils.set_random_seed(0)
    x, y = _iris(0)
    x = (x - x.min(0)) / (x.max(0) - x.min(0))  # MinMaxScaler
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(4, activation="relu", kernel_initializer=_normal()),
            keras.layers.Dense(8, activation="relu", kernel_initializer=_normal()),
            keras.layers.Dense(3, activation="softmax", kernel_initializer=_normal()),
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(model, x, _one_hot(y, 3), fit=dict(epochs=30, batch_size=32))


# ---------------------------------------------------------------- SO 52800582
# Fit y = x**4 on x = arange(-100, 100, 0.5) (400 points), full batch, Adam.
# Buggy: x in -100..100 and y up to 1e8 unscaled, sigmoid first hidden layer.
# Fix: StandardScaler on x and y, relu first hidden layer.
# Cut: 1000 epochs (buggy) / 100 x 1000 epochs (fixed) -> 50 epochs each.


def _quartic():
    x = np.arange(-100, 100, 0.5)
    return x, x**4


def so52800582_buggy():
    keras.utils.set_random_seed(0)
    x, y = _quartic()
    model = keras.Sequential(
        [
            keras.Input(shape=(1,)),
            keras.layers.Dense(50),
            keras.layers.Activation("sigmoid"),
            keras.layers.Dense(50),
            keras.layers.Activation("elu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(loss="mse", optimizer="adam")
    return Run(
        model,
        x.reshape(-1, 1),
        y.reshape(-1, 1),
        fit=dict(epochs=50, batch_size=len(x)),
    )


def so52800582_fixed():
    keras.utils.set_random_seed(0)
    x, y = _quartic()
    x = (x - x.mean()) / x.std()
    y = (y - y.mean()) / y.std()
    model = keras.Sequential(
        [
            keras.Input(shape=(1,)),
            keras.layers.Dense(50),
            keras.layers.Activation("relu"),
            keras.layers.Dense(50),
            keras.layers.Activation("elu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(loss="mse", optimizer="adam")
    return Run(
        model,
        x.reshape(-1, 1),
        y.reshape(-1, 1),
        fit=dict(epochs=50, batch_size=len(x)),
    )


# ---------------------------------------------------------------- SO 41372874
# SIN.csv: 298 rows (SIN, SIN-1, Direction); SIN in 0..0.84 (the first 12 rows a
# sine ramp, then scattered values), SIN-1 the previous row's SIN, Direction = 1
# on every row. First 80% (238 rows) train. 2-2-1 MLP, init='uniform', relu,
# sigmoid output, binary crossentropy, Adam, batch 2, nb_epoch=20.
# The benchmark says "No issue in the structure" and has no corrected program:
# the fixed twin is the same program. Cut: 20 -> 5 epochs (595 steps).


def so41372874_buggy():
    keras.utils.set_random_seed(0)
    r = data.rng(0)
    sin = np.concatenate(
        [np.sin(2 * np.pi * np.arange(12) / 100), r.uniform(0.0, 0.84, 286)]
    )
    x = np.stack([sin, np.concatenate([[0.0], sin[:-1]])], axis=1)
    y = np.ones(len(x), dtype=int)
    n = int(len(x) * 0.8)
    model = keras.Sequential(
        [
            keras.Input(shape=(2,)),
            keras.layers.Dense(2, kernel_initializer=_uniform()),
            keras.layers.Activation("relu"),
            keras.layers.Dense(2, kernel_initializer=_uniform()),
            keras.layers.Activation("relu"),
            keras.layers.Dense(1, kernel_initializer=_uniform()),
            keras.layers.Activation("sigmoid"),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return Run(model, x[:n], y[:n], fit=dict(epochs=5, batch_size=2))


# ---------------------------------------------------------------- SO 34673164
# dataset.csv: 9 rows (the first line is read as the header), 16 numeric
# features (county statistics: several columns in the 1e3..7e5 range) and a
# label (4 "Barack Obama", 5 "Mitt Romney"), one-hot. 16-64-64-2 MLP,
# init='uniform', tanh, dropout 0.5, softmax + MSE, SGD(lr=0.1, momentum=0.9,
# nesterov, decay=1e-6: decay dropped), batch 16, nb_epoch=20 (kept).
# Fix: BatchNormalization on the input, sigmoid output + binary crossentropy.
# Column ranges (min, max) of the file's rows; the log-scale columns are drawn
# log-uniformly.
_VOTES = [
    (9278, 662628, True),
    (34.5, 41.8, False),
    (34.5, 313.13, False),
    (9.7, 224.0, False),
    (9.5, 21.3, False),
    (9.5, 21.3, False),
    (92, 175134, True),
    (3802, 267862, True),
    (2.41, 2.63, False),
    (51.9, 74.7, False),
    (14.3, 28.8, False),
    (10.2, 31.6, False),
    (56642, 159768, True),
    (-1.16, 2.24, False),
    (-1.03, 2.24, False),
    (0.14, 0.93, False),
]


def _votes(seed=0):
    r = data.rng(seed)
    cols = []
    for lo, hi, log in _VOTES:
        if log:
            cols.append(np.exp(r.uniform(np.log(lo), np.log(hi), 9)))
        else:
            cols.append(r.uniform(lo, hi, 9))
    x = np.round(np.stack(cols, axis=1), 2)
    y = np.array([0] * 4 + [1] * 5)
    return x, _one_hot(y, 2)


def _votes_model(out, batchnorm):
    layers = [keras.Input(shape=(16,))]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization())
    layers += [
        keras.layers.Dense(64, kernel_initializer=_uniform()),
        keras.layers.Activation("tanh"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(64, kernel_initializer=_uniform()),
        keras.layers.Activation("tanh"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(2, kernel_initializer=_uniform()),
        keras.layers.Activation(out),
    ]
    return keras.Sequential(layers)


def so34673164_buggy():
    keras.utils.set_random_seed(0)
    x, y = _votes(0)
    model = _votes_model("softmax", batchnorm=False)
    sgd = keras.optimizers.SGD(
        learning_rate=0.1, momentum=0.9, nesterov=True
    )  # decay=1e-6 dropped
    model.compile(loss="mean_squared_error", optimizer=sgd, metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=20, batch_size=16))


def so34673164_fixed():
    keras.utils.set_random_seed(0)
    x, y = _votes(0)
    model = _votes_model("sigmoid", batchnorm=True)
    sgd = keras.optimizers.SGD(
        learning_rate=0.1, momentum=0.9, nesterov=True
    )  # decay=1e-6 dropped
    model.compile(loss="binary_crossentropy", optimizer=sgd, metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=20, batch_size=16))


# ---------------------------------------------------------------- SO 48221692
# Linear_Data.csv: x = -10.0..10.0 step 0.1 (201 rows), y = x**2 + 3 (3..103).
# train_test_split(test_size=0.25) -> 150 training rows. 1-5-1 MLP, sigmoid
# hidden; buggy output sigmoid (fix: linear); MSE, SGD (lr 0.01), full batch,
# 1000 epochs. Cut: 1000 -> 50 epochs.


def _parabola():
    x = np.round(np.arange(-100, 101) / 10.0, 1)
    y = x**2 + 3
    p = data.rng(7).permutation(len(x))[:150]
    return x[p].reshape(-1, 1), y[p]


def _parabola_model(out):
    return keras.Sequential(
        [
            keras.Input(shape=(1,)),
            keras.layers.Dense(5),
            keras.layers.Activation("sigmoid"),
            keras.layers.Dense(1),
            keras.layers.Activation(out),
        ]
    )


def so48221692_buggy():
    keras.utils.set_random_seed(0)
    x, y = _parabola()
    model = _parabola_model("sigmoid")
    model.compile(loss="mean_squared_error", optimizer="sgd", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=50, batch_size=len(x)))


def so48221692_fixed():
    keras.utils.set_random_seed(0)
    x, y = _parabola()
    model = _parabola_model("linear")
    model.compile(loss="mean_squared_error", optimizer="sgd", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=50, batch_size=len(x)))


# ---------------------------------------------------------------- SO 50079585
# Car damage photos (data3a): 3 classes minor/moderate/severe, 979 training
# (278/315/386) and 171 validation (48/55/68) images, 150x150 RGB, rescaled
# 1/255 by ImageDataGenerator. Three conv(3x3)+relu+maxpool blocks (32, 32,
# 64), Dense 64 relu, dropout 0.5, RMSprop, batch 16, 10 epochs.
# Buggy: class_mode='binary' (targets = class index 0., 1., 2.), Dense(1) sigmoid,
# binary crossentropy. Fix: class_mode='categorical', Dense(3) softmax,
# categorical crossentropy.
# Cut: images 150x150 -> 64x64 (same layer structure); training set 979 -> 490
# images (class proportions kept), validation 171 -> 86; 10 -> 2 epochs;
# the generator's shear/zoom/flip augmentation dropped.


def _cars():
    x, y = _images([139, 158, 193], 64, seed=50)
    xv, yv = _images([24, 28, 34], 64, seed=51)
    x, y = _shuffle(0, x, y)
    return x, y, xv, yv


def _cars_model(units, out):
    return keras.Sequential(
        [
            keras.Input(shape=(64, 64, 3)),
            keras.layers.Conv2D(32, (3, 3)),
            keras.layers.Activation("relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(32, (3, 3)),
            keras.layers.Activation("relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, (3, 3)),
            keras.layers.Activation("relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(64),
            keras.layers.Activation("relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(units),
            keras.layers.Activation(out),
        ]
    )


def so50079585_buggy():
    keras.utils.set_random_seed(0)
    x, y, xv, yv = _cars()
    model = _cars_model(1, "sigmoid")
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    y, yv = y.astype("float32"), yv.astype("float32")  # class_mode='binary': 0., 1., 2.
    return Run(model, x, y, fit=dict(epochs=2, batch_size=16, validation_data=(xv, yv)))


def so50079585_fixed():
    keras.utils.set_random_seed(0)
    x, y, xv, yv = _cars()
    model = _cars_model(3, "softmax")
    model.compile(
        loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"]
    )
    return Run(
        model,
        x,
        _one_hot(y, 3),
        fit=dict(epochs=2, batch_size=16, validation_data=(xv, _one_hot(yv, 3))),
    )


# ---------------------------------------------------------------- SO 45337371
# The runnable benchmark version (Buggy Model/updatepy.py): x and y uniform
# (1000, 5, 1), Dense(60) relu, Dense(50) relu, Dense(1) + softmax (fix:
# sigmoid), binary crossentropy, Adam, batch 1, 5 epochs.
# Cut: 5 epochs -> 1 epoch (1000 steps).


def _uniform_xy():
    r = data.rng(0)
    return r.uniform(size=(1000, 5, 1)), r.uniform(size=(1000, 5, 1))


def _five_features_model(out):
    return keras.Sequential(
        [
            keras.Input(shape=(5, 1)),
            keras.layers.Dense(60),
            keras.layers.Activation("relu"),
            keras.layers.Dense(50),
            keras.layers.Activation("relu"),
            keras.layers.Dense(1),
            keras.layers.Activation(out),
        ]
    )


def so45337371_buggy():
    keras.utils.set_random_seed(0)
    x, y = _uniform_xy()
    model = _five_features_model(_k2("softmax"))  # Keras 2 semantics, see _k2
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=1, batch_size=1))


def so45337371_fixed():
    keras.utils.set_random_seed(0)
    x, y = _uniform_xy()
    model = _five_features_model("sigmoid")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=1, batch_size=1))


# ---------------------------------------------------------------- SO 44066044
# NetworkPackets.csv: 21 rows (8 of class 0 first, then 13 of class 1), 11 raw
# packet fields (IPv4 addresses as integers ~3.2e9, window 8192..525568, ports
# 502..56783, ...). 11-12-12-1 MLP, init='normal', relu; buggy output relu
# (fix: sigmoid), binary crossentropy, Adam, batch 5, nb_epoch=100.
# Fix also standardises X (preprocessing.scale).
# The values each field takes per class, from the file; rows with a payload
# (field 6 = 12) carry the payload fields. Cut: 100 -> 20 epochs (100 steps).
_PACKETS = {
    0: dict(
        src=[3232235773, 3232235778],
        win=[524032, 524288, 524544],
        port=[502, 55783, 56783],
        f7=[0.860417, 61.0],
        f8=6,
        f10=[206, 207],
    ),
    1: dict(
        src=[3232235781],
        win=[8192, 525558, 525568],
        port=[502, 55924],
        f7=[0.0, 65280.0],
        f8=5,
        f10=[100, 101, 102],
    ),
}


def _packets(seed=0):
    r = data.rng(seed)
    rows, ys = [], []
    for c, n in ((0, 8), (1, 13)):
        v = _PACKETS[c]
        for i in range(n):
            payload = i % 2 == 1
            rows.append(
                [
                    r.choice(v["src"]),
                    3232235779,
                    6,
                    128,
                    r.choice(v["win"]),
                    r.choice(v["port"]),
                    12 if payload else 0,
                    r.choice(v["f7"]) if payload else 0,
                    v["f8"] if payload else 0,
                    0,
                    r.choice(v["f10"]) if payload else 0,
                ]
            )
            ys.append(c)
    return np.array(rows, dtype="float64"), np.array(ys, dtype="float64")


def _packets_model(out):
    return keras.Sequential(
        [
            keras.Input(shape=(11,)),
            keras.layers.Dense(12, kernel_initializer=_normal()),
            keras.layers.Activation("relu"),
            keras.layers.Dense(12, kernel_initializer=_normal()),
            keras.layers.Activation("relu"),
            keras.layers.Dense(1, kernel_initializer=_normal()),
            keras.layers.Activation(out),
        ]
    )


def so44066044_buggy():
    keras.utils.set_random_seed(0)
    x, y = _packets()
    model = _packets_model("relu")
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=20, batch_size=5))


def so44066044_fixed():
    keras.utils.set_random_seed(0)
    x, y = _packets()
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd == 0, 1.0, sd)  # preprocessing.scale
    model = _packets_model("sigmoid")
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=20, batch_size=5))


# ---------------------------------------------------------------- SO 51930566
# Iris, one-hot, train_test_split(test_size=0.5) -> 75 train / 75 validation.
# Buggy: the scaled split is overwritten by a split of the raw features; 4-4-3
# MLP, init='normal', relu, sigmoid output + categorical crossentropy, Adam,
# batch 5, 50 epochs. Fix: standardised features, softmax output.
# Cut: 50 -> 10 epochs (150 steps).


def _iris_split(scale):
    x, y = _iris(0)
    if scale:
        x = (x - x.mean(0)) / x.std(0)
    x, y = _shuffle(2, x, _one_hot(y, 3))
    return x[:75], y[:75], x[75:], y[75:]


def _iris_model(out):
    return keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(4, kernel_initializer=_normal()),
            keras.layers.Activation("relu"),
            keras.layers.Dense(3, kernel_initializer=_normal()),
            keras.layers.Activation(out),
        ]
    )


def so51930566_buggy():
    keras.utils.set_random_seed(0)
    x, y, xv, yv = _iris_split(scale=False)
    model = _iris_model(_k2("sigmoid"))  # Keras 2 semantics, see _k2
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=10, batch_size=5, validation_data=(xv, yv)))


def so51930566_fixed():
    keras.utils.set_random_seed(0)
    x, y, xv, yv = _iris_split(scale=True)
    model = _iris_model("softmax")
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=10, batch_size=5, validation_data=(xv, yv)))


# ---------------------------------------------------------------- SO 47352366
# MNIST through the TF tutorial's input_data (float images in [0, 1], flat 784,
# one-hot), 600 train_on_batch steps of 50. Reshape -> conv 5x5x32 relu ->
# maxpool -> conv 5x5x64 relu -> maxpool -> Dense 1024 relu (bias 0.1) ->
# dropout 0.5 -> Dense 10 relu (fix: softmax), categorical crossentropy, Adam.
# (The benchmark's update.py variant feeds raw 0..255 keras.datasets pixels; the
# post's program and its fix both use input_data's [0, 1] scale, kept here.)
# Cut: 600 steps -> 40 steps (2000 test-split images, batch 50, 1 epoch).


def _mnist_flat():
    x, y = data.mnist(2000)
    return x.reshape(-1, 784).astype("float32") / 255.0, _one_hot(y, 10)


def _mnist_cnn(out):
    b = keras.initializers.Constant(value=0.1)
    return keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(
                32, (5, 5), padding="same", activation="relu", bias_initializer=b
            ),
            keras.layers.MaxPooling2D(padding="same"),
            keras.layers.Conv2D(
                64, (5, 5), padding="same", activation="relu", bias_initializer=b
            ),
            keras.layers.MaxPooling2D(padding="same"),
            keras.layers.Reshape((1, 7 * 7 * 64)),
            keras.layers.Dense(1024, activation="relu", bias_initializer=b),
            keras.layers.Dropout(rate=0.5),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation=out),
        ]
    )


def so47352366_buggy():
    keras.utils.set_random_seed(0)
    x, y = _mnist_flat()
    model = _mnist_cnn("relu")
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=1, batch_size=50))


def so47352366_fixed():
    keras.utils.set_random_seed(0)
    x, y = _mnist_flat()
    model = _mnist_cnn("softmax")
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=1, batch_size=50))


# ---------------------------------------------------------------- SO 45442843
# dataset.csv: 998 rows (first line read as the header): an integer x in
# 15041..24987 and label 1 if x < 20000 else 0 (490 / 508). First 80% train,
# rest validation. Dense(1) sigmoid -> Dense(1, init='normal') softmax,
# mean absolute error, RMSprop, batch 200, 100 epochs.
# Fix: preprocessing.scale(x), sigmoid output, binary crossentropy.
# Cut: 100 -> 10 epochs (40 steps).


def _threshold(scale):
    r = data.rng(0)
    x = r.integers(15000, 25000, size=(998, 1)).astype("float64")
    y = (x[:, 0] < 20000).astype("float32")  # astype(bool) in the program
    if scale:
        x = (x - x.mean()) / x.std()
    n = int(len(x) * 0.8)
    return x[:n], y[:n], x[n:], y[n:]


def _threshold_model(out):
    return keras.Sequential(
        [
            keras.Input(shape=(1,)),
            keras.layers.Dense(1),
            keras.layers.Activation("sigmoid"),
            keras.layers.Dense(1, kernel_initializer=_normal()),
            keras.layers.Activation(out),
        ]
    )


def so45442843_buggy():
    keras.utils.set_random_seed(0)
    x, y, xv, yv = _threshold(scale=False)
    model = _threshold_model("softmax")
    model.compile(loss="mean_absolute_error", optimizer="rmsprop", metrics=["accuracy"])
    return Run(
        model, x, y, fit=dict(epochs=10, batch_size=200, validation_data=(xv, yv))
    )


def so45442843_fixed():
    keras.utils.set_random_seed(0)
    x, y, xv, yv = _threshold(scale=True)
    model = _threshold_model("sigmoid")
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return Run(
        model, x, y, fit=dict(epochs=10, batch_size=200, validation_data=(xv, yv))
    )


# ---------------------------------------------------------------- SO 48594888
# CIFAR-10 (uint8 32x32x3, one-hot). Buggy: raw 0..255 pixels, conv 3x3x64 relu
# he_normal -> maxpool -> conv 3x3x256 -> maxpool -> Dense 512 relu -> dropout
# 0.3 -> softmax, Adam, batch 500, 5 epochs, validation on the test set.
# Fix: x / 255, second conv 2x2, Dense 1024, dropout 0.4 (batch 500).
# Data: CIFAR-10 is not available offline; generated uint8 32x32x3 images with
# a class-dependent colour cast, 10 balanced classes.
# Cut: 50000 -> 1000 training images, 10000 -> 200 validation, 5 -> 2 epochs
# (4 steps of 500).


def _cifar():
    x, y = _images([100] * 10, 32, seed=48)
    xv, yv = _images([20] * 10, 32, seed=49)
    x, y = _shuffle(0, x, y)
    to_u8 = lambda a: np.round(a * 255).astype("uint8")  # noqa: E731
    return to_u8(x), _one_hot(y, 10), to_u8(xv), _one_hot(yv, 10)


def _cifar_model(k2, dense, drop):
    return keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            keras.layers.Conv2D(
                64, (3, 3), activation="relu", kernel_initializer="he_normal"
            ),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Conv2D(
                256, k2, activation="relu", kernel_initializer="he_normal"
            ),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(dense, activation="relu"),
            keras.layers.Dropout(drop),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def so48594888_buggy():
    keras.utils.set_random_seed(0)
    x, y, xv, yv = _cifar()
    model = _cifar_model((3, 3), 512, 0.3)
    model.compile(
        optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"]
    )
    return Run(
        model, x, y, fit=dict(epochs=2, batch_size=500, validation_data=(xv, yv))
    )


def so48594888_fixed():
    keras.utils.set_random_seed(0)
    x, y, xv, yv = _cifar()
    x = x.astype("float32") / 255
    xv = xv.astype("float32") / 255
    model = _cifar_model((2, 2), 1024, 0.4)
    model.compile(
        optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"]
    )
    return Run(
        model, x, y, fit=dict(epochs=2, batch_size=500, validation_data=(xv, yv))
    )


# ---------------------------------------------------------------- SO 31627380
# Titanic train.csv: 891 passengers, 10 columns after dropping Survived, the
# categorical ones label-encoded over train+test (Pclass 0..2, Name 0..1306,
# Sex 0..1, SibSp 0..6, Parch 0..7, Ticket 0..928, Cabin 0..186 with 186 =
# 'missing' on 77%, Embarked 0..3), Age (0.42..80, NaN -> mean 29.7) and Fare
# (0..512) raw; Survived (38%) one-hot. Dense 512 relu, dropout 0.5, Dense 2
# softmax + categorical crossentropy (fix: sigmoid + binary crossentropy),
# Adam, batch 4, nb_epoch=10, validation_split 0.2. Neither version scales the
# label-encoded ids (up to 1306) or the fare: the benchmark's patch only swaps
# one valid output/loss pairing for another.
# Cut: 10 -> 2 epochs (356 steps).


def _titanic(seed=0):
    r = data.rng(seed)
    n = 891
    pclass = r.choice(3, size=n, p=np.array([216, 184, 491]) / 891)
    sex = (r.uniform(size=n) < 577 / 891).astype(int)  # 1 = male
    # survival rate by sex (female, male) and class, as in the real data
    rate = np.array([[0.97, 0.92, 0.50], [0.37, 0.16, 0.14]])
    survived = (r.uniform(size=n) < rate[sex, pclass]).astype(int)
    name = r.permutation(1307)[:n]
    age = np.clip(r.normal(29.7, 14.5, n), 0.42, 80.0)
    age[r.uniform(size=n) < 177 / 891] = 29.7  # missing ages filled with the mean
    sibsp = r.choice(7, size=n, p=np.array([608, 209, 28, 16, 18, 5, 7]) / 891)
    parch = r.choice(8, size=n, p=np.array([678, 118, 80, 5, 4, 5, 1, 0]) / 891)
    ticket = r.integers(0, 929, n)
    fare_median = np.array([60.0, 14.25, 8.05])[pclass]
    fare = np.clip(fare_median * np.exp(r.normal(0, 0.6, n)), 0.0, 512.33)
    cabin = np.where(
        r.uniform(size=n) < np.array([0.2, 0.9, 0.98])[pclass],
        186,
        r.integers(0, 186, n),
    )
    embarked = r.choice(4, size=n, p=np.array([168, 77, 644, 2]) / 891)
    x = np.stack(
        [pclass, name, sex, age, sibsp, parch, ticket, fare, cabin, embarked], axis=1
    )
    return x.astype("float32"), _one_hot(survived, 2)


def _titanic_model(out):
    return keras.Sequential(
        [
            keras.Input(shape=(10,)),
            keras.layers.Dense(512),
            keras.layers.Activation("relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(2),
            keras.layers.Activation(out),
        ]
    )


def so31627380_buggy():
    keras.utils.set_random_seed(0)
    x, y = _titanic()
    model = _titanic_model("softmax")
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=2, batch_size=4, validation_split=0.2))


def so31627380_fixed():
    keras.utils.set_random_seed(0)
    x, y = _titanic()
    model = _titanic_model("sigmoid")
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=2, batch_size=4, validation_split=0.2))


# ---------------------------------------------------------------- SO 58609115
# export78.csv: 2209 rows (number, class); the number runs 1..1e9 and its class
# names its magnitude and leading digit (69 classes), one-hot encoded;
# train_test_split(test_size=0.2) -> 1767 training rows. 1-69-69-69 MLP,
# kernel_initializer='random_normal', Adam, batch 50, X fed raw.
# Published patch: relu, relu, softmax + categorical crossentropy (buggy) ->
# sigmoid, sigmoid, sigmoid + binary crossentropy (fixed); the published
# before/after numbers (accuracy 0.0962 -> 0.9855 = 68/69, the binary accuracy
# of an all-zero prediction) fit that direction. (The repository's folders hold
# them the other way round: "Buggy Code" sigmoid/BCE epochs=1, "Correct Code"
# relu/softmax/CCE epochs=10.) 5 epochs here for both (180 steps).
# Keras 3 resolves metrics=['accuracy'] by the output shape (categorical accuracy
# for 69 units) where Keras 2 used binary accuracy with binary_crossentropy, so
# the fixed twin no longer reports the 0.9855.
# Rows per magnitude (1-digit .. 9-digit numbers) in the file; the 5-digit
# numbers only have leading digits 2, 6, 7, 8, 9 (hence 69 = 1 + 8*9 - 4 classes;
# the 1-digit numbers are a single class).
_MAGNITUDES = [35, 462, 34, 464, 7, 46, 445, 70, 646]


def _magnitudes(seed=0):
    r = data.rng(seed)
    classes = [(0, d) for d in [1]] + [
        (m, d)
        for m in range(1, 9)
        for d in range(1, 10)
        if not (m == 4 and d in (1, 3, 4, 5))
    ]
    index = {c: i for i, c in enumerate(classes)}
    xs, ys = [], []
    for m, count in enumerate(_MAGNITUDES):
        digits = [d for d in range(1, 10) if (m, d) in index or m == 0]
        d = r.choice(digits, size=count)
        lo = d * 10.0**m
        x = np.floor(lo + r.uniform(size=count) * 10.0**m)
        xs.append(x)
        ys += [index[(0, 1)] if m == 0 else index[(m, di)] for di in d]
    x, y = _shuffle(0, np.concatenate(xs), np.array(ys))
    n = int(round(len(x) * 0.8))
    return x[:n].reshape(-1, 1), _one_hot(y[:n], len(classes)).astype(int)


def _magnitudes_model(act, out):
    return keras.Sequential(
        [
            keras.Input(shape=(1,)),
            keras.layers.Dense(69, kernel_initializer=_normal()),
            keras.layers.Activation(act),
            keras.layers.Dense(69, kernel_initializer=_normal()),
            keras.layers.Activation(act),
            keras.layers.Dense(69, kernel_initializer=_normal()),
            keras.layers.Activation(out),
        ]
    )


def so58609115_buggy():
    keras.utils.set_random_seed(0)
    x, y = _magnitudes()
    model = _magnitudes_model("relu", "softmax")
    model.compile(
        optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=5, batch_size=50))


def so58609115_fixed():
    keras.utils.set_random_seed(0)
    x, y = _magnitudes()
    model = _magnitudes_model("sigmoid", "sigmoid")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=5, batch_size=50))


# ---------------------------------------------------------------- SO 50481178
# sklearn make_multilabel_classification(n_samples=1000, n_features=4,
# n_classes=1): bag-of-words counts (~Poisson(50) words over 4 features; a
# labelled sample draws its words from the class's feature distribution, an
# unlabelled one uniformly), label 1 on ~2/3 of the samples. 80% train,
# validation_split 0.1. MLP 10-20-30-40-50 relu; Dense(1) sigmoid + binary
# crossentropy (fix: Dense(2) softmax + sparse categorical crossentropy), Adam,
# batch 10, 50 epochs. Cut: 50 -> 5 epochs (360 steps).


def _multilabel(seed=0):
    r = data.rng(seed)
    n, m = 1000, 4
    p_w_c = r.uniform(size=m)
    p_w_c /= p_w_c.sum()
    x = np.zeros((n, m))
    y = np.zeros(n, dtype=int)
    for i in range(n):
        size = r.poisson(2)
        while size > 1:
            size = r.poisson(2)
        words = max(r.poisson(50), 1)
        if size:
            y[i] = 1
            x[i] = np.bincount(r.choice(m, size=words, p=p_w_c), minlength=m)
        else:
            x[i] = np.bincount(r.integers(0, m, words), minlength=m)
    return x[:800], y[:800]


def _deep_mlp():
    layers = [keras.Input(shape=(4,)), keras.layers.Dense(10, activation="relu")]
    for units in (20, 30, 40, 50):
        layers += [keras.layers.Dense(units), keras.layers.Activation("relu")]
    return layers


def so50481178_buggy():
    keras.utils.set_random_seed(0)
    x, y = _multilabel()
    model = keras.Sequential(
        _deep_mlp() + [keras.layers.Dense(1), keras.layers.Activation("sigmoid")]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return Run(
        model,
        x,
        y,
        fit=dict(epochs=5, batch_size=10, validation_split=0.1, shuffle=True),
    )


def so50481178_fixed():
    keras.utils.set_random_seed(0)
    x, y = _multilabel()
    model = keras.Sequential(
        _deep_mlp() + [keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(
        model,
        x,
        y,
        fit=dict(epochs=5, batch_size=10, validation_split=0.1, shuffle=True),
    )


# ------------------------------------------------------------------- programs
PROGRAMS: list[Program] = [
    Program(
        "SO 59278771",
        SO + "59278771",
        "sigmoid output with categorical_crossentropy on 3 one-hot iris classes "
        "(fix: softmax output, plus MinMax-scaled features and an extra Dense(8))",
        ("loss_mismatch",),
        so59278771_buggy,
        so59278771_fixed,
    ),
    Program(
        "SO 52800582",
        SO + "52800582",
        "regressing y = x**4 on unscaled x in -100..100 (targets up to 1e8) through a "
        "sigmoid first layer that saturates (fix: StandardScaler on x and y, relu)",
        ("input_scale", "saturation", "exploding_gradient"),
        so52800582_buggy,
        so52800582_fixed,
    ),
    Program(
        "SO 41372874",
        SO + "41372874",
        "no structural bug (benchmark: 'No issue in the structure'); every label in the "
        "provided SIN.csv is 1",
        (),
        so41372874_buggy,
        so41372874_buggy,
        not_dynamics="The benchmark labels this program 'No issue in the structure' (same "
        "loss 0.1534 / accuracy 1 before and after) and ships no corrected version; the "
        "fixed twin is the same program.",
    ),
    Program(
        "SO 34673164",
        SO + "34673164",
        "unnormalised features up to ~7e5 saturate the tanh hidden layers "
        "(fix: BatchNormalization on the input, sigmoid + binary_crossentropy instead of "
        "softmax + MSE)",
        ("input_scale", "saturation"),
        so34673164_buggy,
        so34673164_fixed,
    ),
    Program(
        "SO 48221692",
        SO + "48221692",
        "sigmoid output for regression targets 3..103 (fix: linear output)",
        ("loss_mismatch",),
        so48221692_buggy,
        so48221692_fixed,
    ),
    Program(
        "SO 50079585",
        SO + "50079585",
        "3-class data fed as class_mode='binary' (targets 0, 1, 2) to one sigmoid unit with "
        "binary_crossentropy (fix: 3-unit softmax, categorical labels and loss)",
        ("loss_mismatch",),
        so50079585_buggy,
        so50079585_fixed,
    ),
    Program(
        "SO 45337371",
        SO + "45337371",
        "softmax over a single output unit: constant output 1, zero gradients "
        "(fix: sigmoid)",
        ("zero_gradient", "loss_mismatch"),
        so45337371_buggy,
        so45337371_fixed,
    ),
    Program(
        "SO 44066044",
        SO + "44066044",
        "raw packet fields (IPs as integers ~3.2e9) unscaled and a relu output under "
        "binary_crossentropy (fix: preprocessing.scale, sigmoid output)",
        ("input_scale", "loss_mismatch"),
        so44066044_buggy,
        so44066044_fixed,
    ),
    Program(
        "SO 51930566",
        SO + "51930566",
        "sigmoid output with categorical_crossentropy on 3 one-hot classes, on unscaled "
        "features (fix: softmax output, standardised features)",
        ("loss_mismatch",),
        so51930566_buggy,
        so51930566_fixed,
    ),
    Program(
        "SO 47352366",
        SO + "47352366",
        "relu on the 10-unit output layer under categorical_crossentropy (fix: softmax)",
        ("loss_mismatch",),
        so47352366_buggy,
        so47352366_fixed,
    ),
    Program(
        "SO 45442843",
        SO + "45442843",
        "softmax over a single output unit (constant 1, zero gradients) with MAE on raw "
        "inputs ~2e4 (fix: sigmoid + binary_crossentropy, scaled input)",
        ("zero_gradient", "loss_mismatch", "input_scale"),
        so45442843_buggy,
        so45442843_fixed,
    ),
    Program(
        "SO 48594888",
        SO + "48594888",
        "raw CIFAR-10 pixels 0..255 fed without /255 (fix: scale to [0, 1]; also smaller "
        "second kernel, wider dense layer, more dropout)",
        ("input_scale",),
        so48594888_buggy,
        so48594888_fixed,
    ),
    Program(
        "SO 31627380",
        SO + "31627380",
        "label-encoded Titanic columns fed raw (Name ids up to 1306, Ticket ids up to 928, "
        "Fare up to 512) into Dense(512); the published patch (2-unit softmax + "
        "categorical_crossentropy -> sigmoid + binary_crossentropy, both valid for one-hot "
        "binary labels) does not touch them, so the fixed twin keeps the problem",
        ("input_scale",),
        so31627380_buggy,
        so31627380_fixed,
    ),
    Program(
        "SO 58609115",
        SO + "58609115",
        "raw numbers 1..1e9 fed unscaled into a single-input MLP (random_normal init) to "
        "classify their magnitude; the published patch (sigmoid + binary_crossentropy) "
        "only turns the metric into binary accuracy (68/69) and keeps the raw input",
        ("input_scale",),
        so58609115_buggy,
        so58609115_fixed,
    ),
    Program(
        "SO 50481178",
        SO + "50481178",
        "benchmark patch: Dense(1) sigmoid + binary_crossentropy -> Dense(2) softmax + "
        "sparse_categorical_crossentropy, equivalent for 0/1 labels",
        (),
        so50481178_buggy,
        so50481178_fixed,
        not_dynamics="One sigmoid unit with binary_crossentropy on 0/1 labels is correct; "
        "the patch's 2-unit softmax with sparse_categorical_crossentropy is equivalent. "
        "Published loss/accuracy are 0.0201/0.9944 before and 0.0169/0.9958 after.",
    ),
]


# Where the published fix leaves a real problem in place (a finding on the
# fixed twin is then true): see the README's real-world benchmark.
_AMEND = {
    "SO 31627380": dict(
        fixed_note="the raw label-encoded columns (up to 1306) are kept"
    ),
    "SO 58609115": dict(fixed_note="the raw numbers (up to 1e9) are kept"),
}
PROGRAMS = [
    dataclasses.replace(p, **_AMEND[p.id]) if p.id in _AMEND else p for p in PROGRAMS
]
