"""DeepLocalize benchmark, Stack Overflow programs 1-15 (rows 1-15 of DeepDiagnosis'
Table 6), ported to Keras 3.

Sources: `Benchmark/StackOverflow/<post>/{Buggy Code,Correct Code}/<post>.py` in
Wardat-ISU/DeepLocalize. DeepLocalize's own callback (`keras.callbacks.DeepLocalize`)
and the timing/printing code are dropped; everything that reaches `model.fit` is kept
(layers, units, activations, initialisers, optimiser and learning rate, loss, metrics,
batch size). Keras 2's SGD `decay=` has no Keras 3 equivalent and is dropped (it is
1e-6 per step everywhere here: negligible over the cut runs). Epochs and sample counts
are cut to keep every run to a few seconds; each builder says what it cut.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from . import Program, Run, data

# Keras 2 initialiser strings
UNIFORM = "uniform"  # init='uniform' -> RandomUniform(-0.05, 0.05)
NORMAL = "normal"  # init='normal' -> RandomNormal(stddev=0.05)


def _init(name):
    if name == UNIFORM:
        return keras.initializers.RandomUniform(-0.05, 0.05)
    if name == NORMAL:
        return keras.initializers.RandomNormal(stddev=0.05)
    return name


def _seq(input_shape, *layers):
    return keras.Sequential([keras.Input(shape=input_shape), *layers])


def _dense(units, init="glorot_uniform", **kw):
    return keras.layers.Dense(units, kernel_initializer=_init(init), **kw)


def _act(name):
    return keras.layers.Activation(name)


def _k2_activation(name):
    """`Activation(name)` as Keras 2's losses saw it.

    Keras 3 (TF backend) caches the pre-activation on every sigmoid/softmax output and
    its crossentropy losses use that as logits whatever the activation was: a sigmoid
    output under categorical_crossentropy becomes a softmax on the sigmoid's inputs, a
    softmax output under binary_crossentropy a sigmoid on the softmax's input. That
    silently repairs exactly the bugs these programs have. Keras 2 only took that
    shortcut for a Softmax op under categorical and a Sigmoid op under binary
    crossentropy, otherwise it computed the loss from the probabilities. This
    function gives the same probabilities as a copy without the cached logits (and
    keeps the activation's name), so the loss sees what it saw in Keras 2.
    """
    base = getattr(keras.activations, name)

    def fn(x):
        return keras.ops.copy(base(x))

    fn.__name__ = name
    return fn


def _repeat(x, y, k):
    """k copies of the data in one epoch. Keras 3 spends ~0.1 s per epoch here, so
    programs that run hundreds of epochs over a few rows get the same number of
    updates from fewer, longer epochs (one epoch here = k of the original's)."""
    return np.concatenate([x] * k), np.concatenate([y] * k)


def _mnist_flat(n):
    """MNIST as the programs prepare it: (N, 784) float32 in 0..1, one-hot labels."""
    x, y = data.mnist(n)
    x = x.reshape(x.shape[0], 28 * 28).astype("float32") / 255
    return x, keras.utils.to_categorical(y, 10)


# --------------------------------------------------------------------------------------
# 1. SO 48385830: MNIST 784-30-10 without activations, N(0,1) init, SGD lr=3.0, MSE


def _so48385830(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    # cut: 60000 train images x 30 epochs -> 3000 test-split images x 1 epoch (300 steps)
    x, y = _mnist_flat(3000)
    rn = keras.initializers.RandomNormal
    model = _seq(
        (784,),
        keras.layers.Dense(
            30,
            activation="sigmoid" if fixed else None,
            kernel_initializer=rn(stddev=1),
            bias_initializer=rn(stddev=1),
        ),
        keras.layers.Dense(
            10,
            activation="softmax" if fixed else None,
            kernel_initializer=rn(stddev=1),
            bias_initializer=rn(stddev=1),
        ),
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=3.0),
        loss="categorical_crossentropy" if fixed else "mean_squared_error",
        metrics=["accuracy"],
    )
    return Run(model, x, y, fit=dict(batch_size=10, epochs=1))


# --------------------------------------------------------------------------------------
# 2. SO 44164749: MNIST 784-5000-600-10, softmax + categorical_crossentropy vs
#    sigmoid + binary_crossentropy


def _so44164749(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    # cut: 60000 images x 5 epochs (150 steps of 2000) -> 4000 images x 1 epoch (2 steps)
    # (the 5000-unit layer makes a step of 2000 images cost ~1.5 s on 2 cores)
    x, y = _mnist_flat(4000)
    if fixed:
        head = [_dense(10, activation="sigmoid")]
    else:
        head = [_dense(10), _act("softmax")]
    model = _seq(
        (784,),
        _dense(5000),
        _act("relu"),
        keras.layers.Dropout(0.1),
        _dense(600),
        _act("relu"),
        keras.layers.Dropout(0.1),
        *head,
    )
    # Keras 2: SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True); decay dropped
    sgd = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True)
    model.compile(
        loss="binary_crossentropy" if fixed else "categorical_crossentropy",
        optimizer=sgd,
        metrics=["accuracy"],
    )
    return Run(model, x, y, fit=dict(epochs=1, batch_size=2000))


# --------------------------------------------------------------------------------------
# 3. SO 31556268: XOR 2-4-1 sigmoid, mean_absolute_error + SGD(0.05, momentum 0.11)
#    vs mse + adam


_XOR4 = (
    np.array([[1, 1], [1, 0], [0, 0], [0, 1]]),
    np.array([[0], [1], [0], [1]]),
)


def _so31556268(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    x, y = _XOR4
    model = _seq(
        (2,),
        _dense(4, "glorot_uniform"),
        _act("sigmoid"),
        _dense(1, "glorot_uniform"),
        _act("sigmoid"),
    )
    if fixed:
        model.compile(loss="mse", optimizer="adam", metrics=["acc"])
        # 10000 epochs of one full batch of 4 -> cut to 1000 full-batch steps
        reps, epochs = 250, 4
    else:
        # Keras 2: SGD(lr=0.05, decay=1e-6, momentum=0.11, nesterov=True); decay dropped
        sgd = keras.optimizers.SGD(learning_rate=0.05, momentum=0.11, nesterov=True)
        model.compile(loss="mean_absolute_error", optimizer=sgd, metrics=["accuracy"])
        # 1000 epochs of one full batch of 4 = 1000 full-batch steps, kept
        reps, epochs = 250, 4
    # Each epoch of the original is one step on the whole 4-sample set (batch_size=4;
    # shuffling inside one full batch changes nothing). To avoid thousands of tiny
    # epochs the 4 samples are repeated in order and not shuffled, so every batch of 4
    # is exactly the original full batch: the same sequence of updates, fewer epochs.
    xs = np.tile(x, (reps, 1))
    ys = np.tile(y, (reps, 1))
    return Run(model, xs, ys, fit=dict(epochs=epochs, batch_size=4, shuffle=False))


# --------------------------------------------------------------------------------------
# 4. SO 50306988: two separable blobs, 2-unit softmax + categorical_crossentropy for
#    5 epochs vs 1-unit sigmoid + binary_crossentropy for 50 epochs


def _so50306988(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    r = data.rng(0)
    if fixed:
        n_samples, n_feats = 200, 2
        cls0 = r.uniform(low=0.2, high=0.4, size=(n_samples, n_feats))
        cls1 = r.uniform(low=0.5, high=0.7, size=(n_samples, n_feats))
        x = np.concatenate((cls0, cls1))
        y = np.concatenate((np.zeros((n_samples,)), np.ones((n_samples,))))
        idx = r.permutation(x.shape[0])
        x, y = x[idx], y[idx]
        model = _seq(
            (n_feats,), _dense(2, activation="sigmoid"), _dense(1, activation="sigmoid")
        )
        model.compile(
            loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"]
        )
        # 50 epochs of 13 steps -> 10 epochs of the data x 5 (63 steps each: 630 updates)
        x, y = _repeat(x, y, 5)
        return Run(model, x, y, fit=dict(epochs=10, batch_size=32))
    dataset_size = 200
    class_1 = r.uniform(low=0.2, high=0.4, size=(dataset_size,))
    # sic: np.random.uniform(low=0.7, high=0.5): values in (0.5, 0.7]
    class_2 = 0.7 + (0.5 - 0.7) * r.random(dataset_size)
    rows = []
    for i in range(0, dataset_size, 2):
        rows.append([class_1[i], class_1[i + 1], 1])
        rows.append([class_2[i], class_2[i + 1], 2])
    rows = np.array(rows)
    x = rows[:, :-1]
    labels = rows[:, -1].astype(int) - 1  # LabelEncoder: 1 -> 0, 2 -> 1
    y = keras.utils.to_categorical(labels, 2)
    model = _seq((2,), _dense(2), _act("sigmoid"), _dense(2), _act("softmax"))
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=5, batch_size=32))


# --------------------------------------------------------------------------------------
# 5. SO 48251943: 17-row regression, 2-4-1 with a ReLU output unit vs tanh


def _book1():
    """Stand-in for Book1.csv (17 rows; X = columns 2:4, Y = column 1). Generated with
    the columns' published mean/std/range: Y mean 0.91 std 0.94 in [-1.05, 2.71];
    X1 mean 0.71 std 0.98 in [-1.04, 2.05]; X2 mean 0.57 std 0.74 in [-0.83, 2.03]
    (the real columns are nearly uncorrelated with Y: r = 0.01, -0.23)."""
    r = data.rng(7)
    x = np.stack(
        [
            np.clip(r.normal(0.707, 0.982, 17), -1.043, 2.049),
            np.clip(r.normal(0.569, 0.736, 17), -0.826, 2.033),
        ],
        axis=1,
    )
    y = np.clip(r.normal(0.91, 0.941, 17), -1.053, 2.712)
    return x.round(3), y.round(3)


def _so48251943(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    x, y = _book1()
    if fixed:
        model = _seq((2,), _dense(4, activation="relu"), _dense(1, activation="tanh"))
        # cut: 500 epochs of 2 steps (1000 updates) -> 20 epochs of the rows x 10
        # (17 steps of 10 each: 340 updates, ~170 of the original epochs)
        epochs = 20
    else:
        model = _seq((2,), _dense(4), _act("relu"), _dense(1), _act("relu"))
        # 50 epochs of 2 steps (100 updates) -> 5 epochs of the rows x 10 (85 updates)
        epochs = 5
    model.compile(loss="mean_squared_error", optimizer="sgd", metrics=["MSE"])
    x, y = _repeat(x, y, 10)
    return Run(model, x, y, fit=dict(epochs=epochs, batch_size=10))


# --------------------------------------------------------------------------------------
# 6. SO 38648195: multi-label (3 labels), softmax + MSE vs sigmoid + binary_crossentropy


def _multilabel(n_samples, n_features=20, n_classes=3, n_labels=2, length=50, seed=0):
    """numpy re-implementation of sklearn's make_multilabel_classification (defaults:
    n_labels=2, length=50, allow_unlabeled=True): X are word counts (non-negative
    integers summing to ~50 per row), Y a 0/1 indicator matrix."""
    r = data.rng(seed)
    p_c = r.random(n_classes)
    p_c /= p_c.sum()
    cum_p_c = np.cumsum(p_c)
    p_w_c = r.random((n_features, n_classes))
    p_w_c /= p_w_c.sum(axis=0)
    x = np.zeros((n_samples, n_features))
    y = np.zeros((n_samples, n_classes), dtype=int)
    for i in range(n_samples):
        size = n_classes + 1
        while size > n_classes:
            size = r.poisson(n_labels)
        labels: set = set()
        while len(labels) != size:
            labels.update(
                np.searchsorted(cum_p_c, r.uniform(size=size - len(labels))).tolist()
            )
        labels_l = sorted(labels)
        n_words = 0
        while n_words == 0:
            n_words = r.poisson(length)
        if not labels_l:
            words = r.integers(n_features, size=n_words)
        else:
            cum = p_w_c[:, labels_l].sum(axis=1).cumsum()
            cum /= cum[-1]
            words = np.searchsorted(cum, r.uniform(size=n_words))
        x[i] = np.bincount(words, minlength=n_features)
        y[i, labels_l] = 1
    return x, y


def _so38648195(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    # cut: 60000 samples x 20 epochs -> 5000 samples (4000 train / 1000 validation,
    # the program's 80/20 split) x 2 epochs (200 steps of 20 per epoch)
    x, y = _multilabel(5000)
    x_train, x_test, y_train, y_test = x[:4000], x[4000:], y[:4000], y[4000:]
    model = _seq(
        (20,),
        _dense(20),
        _act("relu"),
        keras.layers.Dropout(0.5),
        _dense(20),
        _act("relu"),
        keras.layers.Dropout(0.5),
        _dense(3),
        _act("sigmoid" if fixed else "softmax"),
    )
    model.compile(
        loss="binary_crossentropy" if fixed else "mean_squared_error",
        optimizer="sgd",
        metrics=["accuracy"],
    )
    return Run(
        model,
        x_train,
        y_train,
        fit=dict(epochs=2, batch_size=20, validation_data=(x_test, y_test)),
    )


# --------------------------------------------------------------------------------------
# 7. SO 33969059: linear regression on inputs in [0, 10000], a softmax over the single
#    output unit vs a linear output


def _so33969059(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    r = data.rng(0)
    ws, xno = [2.0, 1.0, 0.5], 2.2
    if fixed:  # the fixed program divides the weights and offset by their max
        mx = max(abs(v) for v in ws + [xno])
        ws, xno = [v / mx for v in ws], xno / mx
    # cut: 100000 samples x 20 epochs -> 5000 x 2 (157 steps of 32 per epoch)
    count, bounds = 5000, 10000
    x = bounds * r.random((count, 3))
    y = (x @ np.array(ws) + xno).reshape(-1, 1)  # rweight=0 for the train set
    if fixed:
        layers = [
            _dense(3, UNIFORM, activation="tanh"),
            keras.layers.Dropout(0.5),
            _dense(2, UNIFORM, activation="tanh"),
            keras.layers.Dropout(0.5),
            _dense(1, UNIFORM, activation="linear"),
        ]
    else:
        layers = [
            _dense(3, UNIFORM),
            _act("tanh"),
            keras.layers.Dropout(0.5),
            _dense(2, UNIFORM),
            _act("tanh"),
            keras.layers.Dropout(0.5),
            _dense(1, UNIFORM),
            _act("softmax"),
        ]
    model = _seq((3,), *layers)
    # Keras 2: SGD(lr=0.1, decay=1e-6, momentum=0.9, nesterov=True); decay dropped
    sgd = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    model.compile(loss="mean_squared_error", optimizer=sgd, metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=2, batch_size=32, shuffle="batch"))


# --------------------------------------------------------------------------------------
# 8. SO 55328966: MNIST from CSV, raw 0-255 pixels and a sigmoid output with
#    categorical_crossentropy vs /255 and softmax


def _so55328966(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    # the program reads 5000 rows of an MNIST training CSV; here 5000 test-split images.
    # cut: 10 epochs -> 2 (157 steps of 32 per epoch)
    x, labels = data.mnist(5000)
    x = x.reshape(-1, 784).astype("float32")
    if fixed:
        x = x / 255
    y = np.eye(10)[labels]
    l2 = keras.regularizers.L2(0.0)  # lambda_ = 0
    if fixed:
        head = [
            keras.layers.Dense(50, activation="relu", kernel_regularizer=l2),
            keras.layers.Dense(10, activation="softmax", kernel_regularizer=l2),
        ]
    else:
        head = [
            keras.layers.Dense(50, kernel_regularizer=l2),
            _act("relu"),
            keras.layers.Dense(10, kernel_regularizer=l2),
            # sigmoid under categorical_crossentropy, the loss computed from the
            # (normalised) probabilities as in Keras 2: see _k2_activation
            keras.layers.Activation(_k2_activation("sigmoid")),
        ]
    model = _seq((784,), keras.layers.Dense(784), *head)
    # tf.compat.v1.train.GradientDescentOptimizer(0.0001) = plain SGD
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0001),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return Run(model, x, y, fit=dict(epochs=2, batch_size=32))


# --------------------------------------------------------------------------------------
# 9. SO 34311586: 6-sample XOR, 2-3-1 sigmoid with a softmax over the single output


_XOR6 = (
    np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]),
    np.array([[0.0], [0.0], [1.0], [1.0], [0.0], [0.0]]),
)


def _so34311586(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    x, y = _XOR6
    if fixed:
        model = _seq(
            (2,),
            _dense(2, UNIFORM, activation="sigmoid"),
            _dense(3, UNIFORM, activation="sigmoid"),
            _dense(1, UNIFORM, activation="sigmoid"),
        )
        lr = 0.1
    else:
        model = _seq(
            (2,),
            _dense(2, UNIFORM),
            _act("sigmoid"),
            _dense(3, UNIFORM),
            _act("sigmoid"),
            _dense(1, UNIFORM),
            _act("softmax"),
        )
        # (the benchmark's patch text says lr=0.05, momentum=0.11; the program has this)
        lr = 0.001
    # Keras 2: SGD(lr=lr, decay=1e-6, momentum=0.9, nesterov=True); decay dropped
    sgd = keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True)
    model.compile(loss="mean_squared_error", optimizer=sgd)
    if not fixed:
        # 20 epochs, default batch 32 (one full batch of 6 per epoch): kept
        return Run(model, x, y, fit=dict(epochs=20))
    # fixed: 10000 epochs of batches of 4 (2 steps per epoch, 20000 updates) -> the 6
    # samples repeated 250 times, shuffled, batches of 4, 3 epochs (1125 updates)
    x, y = _repeat(x, y, 250)
    return Run(model, x, y, fit=dict(epochs=3, batch_size=4))


# --------------------------------------------------------------------------------------
# 10. SO 31880720: all-ones vs all-zeros vectors, softmax over the single output unit
#     with binary_crossentropy vs sigmoid


def _so31880720(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    # cut: 2 x 10^4 training rows x 3 epochs at batch 1 (60000 steps) -> 10^3 rows
    # x 1 epoch (1000 steps); the validation set (2 x 10^2 rows) is kept
    n, nt = 500, 10**2
    x_train = np.array([[1] * 128] * n + [[0] * 128] * n).astype("float32")
    x_test = np.array([[1] * 128] * nt + [[0] * 128] * nt).astype("float32")
    y_train = np.array([True] * n + [False] * n).astype("bool")
    y_test = np.array([True] * nt + [False] * nt).astype("bool")
    if fixed:
        layers = [
            _dense(50, activation="relu"),
            keras.layers.Dropout(0.2),
            _dense(50, activation="relu"),
            keras.layers.Dropout(0.2),
            _dense(1, activation="sigmoid"),
        ]
    else:
        layers = [
            _dense(50, activation="relu"),
            _act("relu"),
            keras.layers.Dropout(0.2),
            _dense(50),
            _act("relu"),
            keras.layers.Dropout(0.2),
            _dense(1),
            # softmax under binary_crossentropy, the loss computed from the
            # probabilities as in Keras 2: see _k2_activation
            keras.layers.Activation(_k2_activation("softmax")),
        ]
    model = _seq((128,), *layers)
    model.compile(
        loss="binary_crossentropy",
        optimizer=keras.optimizers.RMSprop(),
        metrics=["accuracy"],
    )
    return Run(
        model,
        x_train,
        y_train,
        fit=dict(batch_size=1, epochs=1, validation_data=(x_test, y_test)),
    )


# --------------------------------------------------------------------------------------
# 11. SO 39525358: 3 features valued 65-70 fed unscaled vs StandardScaler


def _sorted_output():
    """Stand-in for 'sorted output.csv': 20 data rows (after skiprows=1) of 3 features
    and a label, the file's row patterns and counts: (65,66,67)->0 x10, (65,66,70)->0 x2,
    (68,69,67)->1 x1, (68,69,70)->1 x7 (label = first feature is 68), order shuffled."""
    rows = (
        [[65, 66, 67, 0]] * 10
        + [[65, 66, 70, 0]] * 2
        + [[68, 69, 67, 1]]
        + [[68, 69, 70, 1]] * 7
    )
    d = np.array(rows, dtype=float)
    return d[data.rng(7).permutation(len(d))]


def _standard_scale(x):
    return (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)


def _so39525358(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    d = _sorted_output()
    x, y = d[:, 0:3], d[:, 3]
    if fixed:
        x = _standard_scale(x)
    # train_test_split(test_size=0.33): 13 train / 7 test rows (already shuffled)
    x_train, x_test, y_train, y_test = x[:13], x[13:], y[:13], y[13:]
    if fixed:
        layers = [
            _dense(12, UNIFORM, activation="relu"),
            _dense(3, UNIFORM, activation="relu"),
            _dense(1, UNIFORM, activation="sigmoid"),
        ]
    else:
        layers = [
            _dense(12, UNIFORM),
            _act("relu"),
            _dense(3, UNIFORM),
            _act("relu"),
            _dense(1, UNIFORM),
            _act("sigmoid"),
        ]
    model = _seq((3,), *layers)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    if fixed:
        # 150 epochs of 2 steps (batch 10) with validation (300 updates) -> 12 epochs
        # of the 13 rows x 10 (13 steps each: 156 updates)
        fit = dict(epochs=12, batch_size=10, validation_data=(x_test, y_test))
    else:
        # 150 epochs of 13 steps (batch 1, 1950 updates) -> 6 epochs of the rows x 10
        # (780 updates)
        fit = dict(epochs=6, batch_size=1)
    x_train, y_train = _repeat(x_train, y_train, 10)
    return Run(model, x_train, y_train, fit=fit)


# --------------------------------------------------------------------------------------
# 12. SO 39217567: 8-bit vectors, three sigmoid layers with MSE and SGD (batch 50) to a
#     shuffled target vs relu, relu, sigmoid with binary_crossentropy (batch 1), identity


def _bits(dim=8):
    x = []
    for i in range(2**dim):
        n = [float(c) for c in bin(i)[2:]]
        x.append([0.0] * (dim - len(n)) + n)
    return np.array(x)


def _so39217567(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    dim = 8
    x = _bits(dim)
    if fixed:
        y = x.copy()  # the fixed program no longer shuffles the targets
        layers = [
            _dense(dim, NORMAL, activation="relu"),
            _dense(dim, NORMAL, activation="relu"),
            _dense(dim, NORMAL, activation="sigmoid"),
        ]
        loss = "binary_crossentropy"
        # cut: 1000 epochs of 256 steps (batch 1) -> 5 epochs (1280 updates)
        fit = dict(epochs=5, batch_size=1)
    else:
        y = x[data.rng(0).permutation(len(x))]  # random.shuffle(y): rows permuted
        layers = [
            _dense(dim, NORMAL),
            _act("sigmoid"),
            _dense(dim, NORMAL),
            _act("sigmoid"),
            _dense(dim, NORMAL),
            _act("sigmoid"),
        ]
        loss = "mse"
        # cut: 1000 epochs of 6 steps (batch 50, 6000 updates) -> 10 epochs of the
        # 256 rows x 10 (52 steps each: 520 updates, ~90 of the original epochs)
        fit = dict(epochs=10, batch_size=50)
        x, y = _repeat(x, y, 10)
    model = _seq((dim,), *layers)
    model.compile(loss=loss, optimizer="SGD", metrics=["accuracy"])  # SGD: lr 0.01
    return Run(model, x, y, fit=fit)


# --------------------------------------------------------------------------------------
# 13. SO 48934338: 50-point quadratic regression, SGD lr=0.1 vs 0.001


def _so48934338(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    x = np.arange(0.0, 5.0, 0.1, dtype="float32").reshape(-1, 1)
    y = 5 * np.power(x, 2) + np.power(data.rng(7).standard_normal(50).reshape(-1, 1), 3)
    if fixed:
        layers = [
            _dense(50, activation="relu"),
            _dense(30, UNIFORM, activation="relu"),
            _dense(1, activation="linear"),
        ]
    else:
        layers = [
            _dense(50),
            _act("relu"),
            _dense(30, UNIFORM),
            _act("relu"),
            _dense(1),
            _act("linear"),
        ]
    model = _seq((1,), *layers)
    sgd = keras.optimizers.SGD(learning_rate=0.001 if fixed else 0.1)
    model.compile(loss="mse", optimizer=sgd, metrics=[] if fixed else ["accuracy"])
    # cut: 1000 epochs of 2 steps (batch 32: 2000 updates) -> the 50 rows x 10 per
    # epoch (16 steps each), 10 epochs buggy (160 updates), 25 fixed (400 updates)
    x, y = _repeat(x, y, 10)
    return Run(model, x, y, fit=dict(epochs=25 if fixed else 10, batch_size=32))


# --------------------------------------------------------------------------------------
# 14. SO 47724077: UCI Adult, 14 raw (unscaled) columns, adam vs sgd

# Per numeric column of adult.data (32561 rows): (min, max, mean, std, fraction zero)
_ADULT_NUMERIC = {
    0: (17, 90, 38.58, 13.64, 0.0),  # age
    2: (12285, 1484705, 189778.37, 105548.36, 0.0),  # fnlwgt
    4: (1, 16, 10.08, 2.57, 0.0),  # education-num
    10: (0, 99999, 1077.65, 7385.18, 0.917),  # capital-gain
    11: (0, 4356, 87.3, 402.95, 0.953),  # capital-loss
    12: (1, 99, 40.44, 12.35, 0.0),  # hours-per-week
}
# categorical columns the program label-encodes, and their number of categories
_ADULT_CATEGORICAL = {1: 9, 3: 16, 5: 7, 6: 15, 7: 6, 8: 5, 9: 2, 13: 42}
_ADULT_POSITIVE = 7841 / 32561  # '>50K'


def _adult(n):
    """Generated stand-in for adult.data: the numeric columns with their real range,
    mean and spread (capital-gain/-loss mostly 0 with a long tail), the categorical
    columns as integer category codes, 24% positive labels that depend on
    education-num, age, hours and capital-gain."""
    r = data.rng(0)
    x = np.zeros((n, 14))
    for c, (lo, hi, mean, std, frac0) in _ADULT_NUMERIC.items():
        if frac0 > 0:  # mostly zero, the rest a long tail
            nz = r.random(n) >= frac0
            mu_nz = mean / (1 - frac0)
            x[:, c] = np.where(nz, np.clip(r.exponential(mu_nz, n), lo + 1, hi), 0)
        else:
            x[:, c] = np.clip(r.normal(mean, std, n), lo, hi)
        x[:, c] = np.round(x[:, c])
    for c, k in _ADULT_CATEGORICAL.items():
        x[:, c] = r.integers(0, k, n)
    z = (
        0.6 * (x[:, 4] - 10.08) / 2.57
        + 0.5 * (x[:, 0] - 38.58) / 13.64
        + 0.3 * (x[:, 12] - 40.44) / 12.35
        + 2.0 * (x[:, 10] > 5000)
        + r.normal(0, 1, n)
    )
    y = (z > np.quantile(z, 1 - _ADULT_POSITIVE)).astype(int)
    return x, y


def _so47724077(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    # In the program each label-encoded categorical column is replaced by
    # `keras.utils.to_categorical(codes)`, a 2-D array assigned to one DataFrame column;
    # what the pandas of the time kept of it is unclear (current pandas refuses). The
    # model takes 14 inputs, so here the codes themselves stand in; the problem the
    # program shows (fnlwgt ~1e5-1e6, capital-gain up to 99999 fed raw) is untouched.
    # cut: 32561 rows x 50 epochs -> 5000 generated rows x 3 epochs (50 steps of 100)
    x, labels = _adult(5000)
    y = keras.utils.to_categorical(labels, 2)
    if fixed:
        layers = [_dense(21, activation="relu"), _dense(2, activation="softmax")]
    else:
        layers = [_dense(21), _act("relu"), _dense(2), _act("softmax")]
    model = _seq((14,), *layers)
    model.compile(
        loss="categorical_crossentropy",
        optimizer="sgd" if fixed else "adam",
        metrics=["accuracy"],
    )
    return Run(model, x, y, fit=dict(epochs=3, batch_size=100))


# --------------------------------------------------------------------------------------
# 15. SO 59325381: MNIST CNN, labels divided by 255 with sparse_categorical_crossentropy
#     vs one-hot labels with categorical_crossentropy


def _so59325381(fixed: bool) -> Run:
    keras.utils.set_random_seed(0)
    # cut: 60000 images x 2 epochs (buggy) / 10 epochs (fixed) -> 3000 images x 1 epoch
    # (94 steps of the default 32)
    x, y = data.mnist(3000)
    x = (x / 255).reshape(-1, 28, 28, 1)
    if fixed:
        y = keras.utils.to_categorical(y.reshape(-1, 1), 10)
        dense = [
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    else:
        y = (y / 255).reshape(-1, 1)  # the bug: y_train = y_train/255
        dense = [
            keras.layers.Dense(128),
            _act("relu"),
            keras.layers.Dense(10),
            _act("softmax"),
        ]
    model = _seq(
        (28, 28, 1),
        keras.layers.Conv2D(64, (3, 3), strides=(1, 1), padding="same"),
        keras.layers.MaxPooling2D(pool_size=(2, 2), padding="valid"),
        keras.layers.Conv2D(32, (3, 3), strides=(1, 1), padding="same"),
        keras.layers.MaxPooling2D(pool_size=(2, 2), padding="valid"),
        keras.layers.Flatten(),
        *dense,
    )
    model.compile(
        optimizer="adam",
        loss="categorical_crossentropy" if fixed else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return Run(model, x, y, fit=dict(epochs=1, batch_size=32))


# --------------------------------------------------------------------------------------


def _pair(fn):
    return (lambda: fn(False)), (lambda: fn(True))


def _program(post, fn, bug, expect, not_dynamics=""):
    buggy, fixed = _pair(fn)
    return Program(
        id=f"SO {post}",
        source=f"https://stackoverflow.com/questions/{post}",
        bug=bug,
        expect=tuple(expect),
        buggy=buggy,
        fixed=fixed,
        not_dynamics=not_dynamics,
    )


PROGRAMS: list[Program] = [
    _program(
        48385830,
        _so48385830,
        "784-30-10 net with no activations at all (linear hidden and output), N(0,1) init, "
        "MSE and SGD lr=3.0: the loss blows up to NaN; fix: sigmoid hidden layer, softmax "
        "output with categorical_crossentropy",
        ("non_finite", "exploding_gradient", "loss_divergence"),
    ),
    _program(
        44164749,
        _so44164749,
        "none on this data: softmax + categorical_crossentropy on single-label MNIST is "
        "right; the 'fix' (sigmoid + binary_crossentropy) only reports binary accuracy",
        (),
        not_dynamics=(
            "The post asked about multi-label data; DeepLocalize's program trains on "
            "single-label MNIST, where the buggy softmax + categorical_crossentropy model "
            "is the correct one. The published improvement (acc 0.888 -> 0.922) comes from "
            "Keras reporting binary accuracy over 10 outputs once the loss is "
            "binary_crossentropy, not from better training."
        ),
    ),
    _program(
        31556268,
        _so31556268,
        "XOR with mean_absolute_error and SGD(lr=0.05, momentum=0.11) for 1000 epochs: "
        "the small, sign-only MAE gradients through sigmoids stall training at "
        "accuracy 0.5; fix: mse with adam (and 10000 epochs)",
        ("vanishing_gradient", "update_ratio"),
    ),
    _program(
        50306988,
        _so50306988,
        "none in the dynamics: a 2-unit softmax with categorical_crossentropy is "
        "equivalent to the 1-unit sigmoid + binary_crossentropy of the fix; the buggy run "
        "trains 5 epochs with adam's default step, the fixed one 50",
        (),
        not_dynamics=(
            "The patch swaps a 2-class softmax/categorical_crossentropy head for the "
            "mathematically equivalent 1-unit sigmoid/binary_crossentropy head and trains "
            "10x longer (5 -> 50 epochs); the published fixed loss is still 0.67. The "
            "difference is too few epochs, not a training-dynamics fault."
        ),
    ),
    _program(
        48251943,
        _so48251943,
        "regression with a ReLU on the single output unit: it dies (outputs 0 for every "
        "input, and cannot give the negative targets); fix: tanh output",
        ("dead_relu",),
    ),
    _program(
        38648195,
        _so38648195,
        "multi-label targets (3 independent labels) with a softmax output and MSE; "
        "fix: sigmoid output with binary_crossentropy",
        ("loss_mismatch",),
    ),
    _program(
        33969059,
        _so33969059,
        "regression with a softmax over the single output unit: the output is always 1, "
        "every gradient is zero; fix: linear output",
        ("zero_gradient", "loss_mismatch"),
    ),
    _program(
        55328966,
        _so55328966,
        "raw 0-255 pixels and a sigmoid output under categorical_crossentropy: the sigmoids "
        "saturate, the loss sticks at ln 10; fix: divide by 255 and use softmax",
        ("input_scale", "loss_mismatch"),
    ),
    _program(
        34311586,
        _so34311586,
        "softmax over the single output unit (always 1, zero gradients); fix: sigmoid "
        "output (and lr 0.001 -> 0.1, many more epochs)",
        ("zero_gradient", "loss_mismatch"),
    ),
    _program(
        31880720,
        _so31880720,
        "softmax over the single output unit with binary_crossentropy (always 1, zero "
        "gradients, loss 7.67); fix: sigmoid output",
        ("zero_gradient", "loss_mismatch"),
    ),
    _program(
        39525358,
        _so39525358,
        "features valued 65-70 fed unscaled (the classes differ by a small offset on a "
        "large constant); fix: StandardScaler",
        ("input_scale",),
    ),
    _program(
        39217567,
        _so39217567,
        "three stacked sigmoid layers (N(0,0.05) init) with MSE and plain SGD: gradients "
        "vanish and the outputs stay at 0.5 (loss 0.25); fix: relu hidden layers, "
        "binary_crossentropy, batch 1 (the fix also drops the target shuffling)",
        ("vanishing_gradient",),
    ),
    _program(
        48934338,
        _so48934338,
        "SGD learning rate 0.1 too large for targets up to ~125 under MSE: the first "
        "steps blow up and the net ends predicting a constant; fix: lr 0.001",
        ("update_ratio", "exploding_gradient", "loss_divergence", "non_finite"),
    ),
    _program(
        47724077,
        _so47724077,
        "UCI Adult columns fed raw (fnlwgt ~1e5-1e6, capital-gain up to 99999) into a "
        "21-unit relu net: huge logits, loss ~30; the patch swaps adam for sgd, the real "
        "fix is scaling the inputs",
        ("input_scale",),
    ),
    _program(
        59325381,
        _so59325381,
        "labels divided by 255 (y_train/255) fed to sparse_categorical_crossentropy: the "
        "targets are no longer class ids; fix: keep the labels (one-hot, "
        "categorical_crossentropy)",
        ("loss_mismatch",),
    ),
]


# Where the published fix leaves a real problem in place, or another kind
# also names the real problem (set after reading gradtrace's findings on the
# ports: see the README's real-world benchmark).
_AMEND = {
    "SO 48385830": dict(
        fixed_note="N(0,1) weights over 784 inputs into a sigmoid layer and SGD lr "
        "3.0 are kept (Nielsen's setup): the layer is saturated and weights move "
        ">10% a step, though it reaches 95%"
    ),
    "SO 48251943": dict(
        # the ReLU output cannot produce the negative targets: that is why it dies
        expect=("dead_relu", "loss_mismatch"),
        fixed_note="the tanh output still cannot reach the targets up to 1.9",
    ),
    "SO 33969059": dict(fixed_note="the raw inputs (0..10000) are kept"),
    "SO 47724077": dict(
        fixed_note="the raw columns (fnlwgt ~1e6) are kept: the fix only swaps "
        "adam for sgd"
    ),
    # lr 0.1 kills the ReLUs (constant prediction); dead_relu's hint is to
    # lower the learning rate, which is the fix
    "SO 48934338": dict(
        expect=(
            "update_ratio",
            "exploding_gradient",
            "loss_divergence",
            "non_finite",
            "dead_relu",
        )
    ),
}
PROGRAMS = [
    dataclasses.replace(p, **_AMEND[p.id]) if p.id in _AMEND else p for p in PROGRAMS
]
