"""The 11 GitHub programs G#1..G#11 of the DeepLocalize benchmark, ported to Keras 3.

Programs: ``Benchmark/GitHub/{Buggy Model,Correct Model}/<project>/`` of
Wardat-ISU/DeepLocalize; G#n is row n of ``deeplocalize-github.csv`` (its row
``no=12`` is G#11). Each builder below names the file it ports and what was cut.

Keras 2 -> 3: ``lr=`` is ``learning_rate=``, ``nb_epoch`` is ``epochs``,
``Conv2D(n, a, b, border_mode=..., subsample=...)`` is
``Conv2D(n, (a, b), padding=..., strides=...)``, the string optimiser
``'adadelta'``/``Adadelta()`` had learning rate 1.0 in Keras 2 (0.001 in Keras 3),
``decay=`` has no Keras 3 equivalent and is dropped (said where it happens).
Where the original adds the activation as a separate ``Activation`` layer, so
does the port.

Only G#8 and G#11 generate their own data; the other datasets are not in the
benchmark repository (or not offline), so they are generated here, seeded, with
the published shape, dtype, value range and label structure (summary statistics
embedded below where they come from the real files).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from . import Program, Run, data

L = keras.layers


def _uniform():
    """Keras 2's ``init='uniform'`` / ``kernel_initializer='uniform'``."""
    return keras.initializers.RandomUniform(-0.05, 0.05)


def _resize(
    images: np.ndarray, size: tuple[int, int], method: str = "bilinear"
) -> np.ndarray:
    out = keras.ops.image.resize(images.astype("float32"), size, interpolation=method)
    return np.asarray(keras.ops.convert_to_numpy(out))


def _smooth(
    rng: np.random.Generator, n: int, size: int, channels: int, grid: int
) -> np.ndarray:
    """Smooth random images in [0, 1]: a grid x grid random field, bilinear-upsampled."""
    return _resize(rng.uniform(0.0, 1.0, (n, grid, grid, channels)), (size, size))


def _class_images(
    rng, n, size, channels, n_classes, grid=4, mix=0.5, noise=0.06, probs=None
):
    """uint8 images 0..255 whose coarse pattern depends on the class (plus a random
    pattern and pixel noise), and their int labels. A stand-in for photos."""
    protos = rng.uniform(0.0, 1.0, (n_classes, grid, grid, channels))
    y = rng.choice(n_classes, size=n, p=probs)
    small = mix * protos[y] + (1.0 - mix) * rng.uniform(
        0.0, 1.0, (n, grid, grid, channels)
    )
    img = _resize(small, (size, size)) + 0.5 * (
        _smooth(rng, n, size, channels, 4 * grid) - 0.5
    )
    img = img + rng.normal(0.0, noise, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8), y


# --------------------------------------------------------------------------- G#1
# Jacobvs/DDOS-ML-Detection, ddos-detect.py. Data: the DDoS dataset
# final-dataset.arff (2.16M packets, 27 attributes; nominal ones encoded as
# integers by liac-arff's encode_nominal; 5 classes Normal 89.6 %, UDP-Flood
# 9.3 %, Smurf 0.58 %, SIDDOS 0.31 %, HTTP-FLOOD 0.19 %), not offline. Generated
# with the attributes' scales from the README's example rows: PKT_ID ~1e6,
# NUMBER_OF_BYTE ~1e6-1e8, BYTE_RATE ~1e4-1e6, times ~0-100, codes 0-50. The
# program never scales them (its label loop ``for val in labels: if
# labels[val] != 0: labels[val] = 1`` only touches rows 0-4, so the 5 classes
# stay). Cut: 4,000 packets (shuffled) instead of 2.16M, the same first-90 % /
# last-10 % split into fit / validation_data, epochs 2 and batch 32 as published.

# packets per class in the full dataset
_DDOS_CLASSES = np.array([1_935_959, 201_344, 12_590, 6_665, 4_110]) / 2_160_668


def _ddos(n: int = 4000, seed: int = 1):
    rng = data.rng(seed)
    c = rng.choice(5, size=n, p=_DDOS_CLASSES)
    t = rng.uniform(0.0, 100.0, n)  # simulation time (s)
    # per class: packet type code {tcp, ack, cbr, ping}, packet size, packet rate
    ptype = np.select([c == 1, c == 2], [2, 3], rng.integers(0, 2, n))
    size = np.select(
        [c == 1, c == 2, c == 3],
        [rng.choice([1000, 1540], n), np.full(n, 1540), np.full(n, 55)],
        rng.choice([55, 1540], n),
    ).astype(float)
    # packet rate: ~250 pkt/s for normal traffic, ~1100 for attacks
    rate = np.exp(rng.normal(np.select([c == 0], [5.5], 7.0), 0.7, n))
    npkt = np.exp(rng.uniform(0.0, np.log(1e5), n)).round()
    avg = np.clip(size * rng.uniform(0.5, 1.0, n), 55, 1540)
    delay = rng.exponential(0.02, n) * (c != 0)
    cols = [
        rng.integers(1, 30, n) + rng.integers(0, 30, n) / 100,  # SRC_ADD
        rng.integers(1, 30, n).astype(float),  # DES_ADD
        rng.integers(0, 2_200_000, n).astype(float),  # PKT_ID
        rng.integers(0, 30, n).astype(float),  # FROM_NODE
        rng.integers(0, 30, n).astype(float),  # TO_NODE
        ptype.astype(float),  # PKT_TYPE
        size,  # PKT_SIZE
        rng.integers(0, 2, n).astype(float),  # FLAGS
        rng.integers(1, 30, n).astype(float),  # FID
        rng.integers(0, 100_000, n).astype(float),  # SEQ_NUMBER
        npkt,  # NUMBER_OF_PKT
        (npkt * avg).round(),  # NUMBER_OF_BYTE
        rng.integers(0, 51, n).astype(float),  # NODE_NAME_FROM
        rng.integers(0, 51, n).astype(float),  # NODE_NAME_TO
        t,  # PKT_IN
        t + rng.exponential(0.001, n),  # PKT_OUT
        t + rng.exponential(0.01, n),  # PKT_R
        delay / 10,  # PKT_DELAY_NODE
        rate,  # PKT_RATE
        rate * avg,  # BYTE_RATE
        avg,  # PKT_AVG_SIZE
        np.clip(rate * avg / 1.25e7, 0, 1),  # UTILIZATION
        delay,  # PKT_DELAY
        t,  # PKT_SEND_TIME
        t + delay + 0.01,  # PKT_RESEVED_TIME
        rng.uniform(0.0, 5.0, n),  # FIRST_PKT_SENT
        t + rng.uniform(0.0, 10.0, n),  # LAST_PKT_RESEVED
    ]
    x = np.stack(cols, axis=1).astype("float32")
    y = keras.utils.to_categorical(c, 5)
    cut = int(0.9 * n)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def _g1(widths: list[int]) -> Run:
    keras.utils.set_random_seed(0)
    (x, y), val = _ddos()
    model = keras.Sequential([L.Input((x.shape[1],))])
    model.add(L.Dense(widths[0], kernel_initializer=_uniform(), activation="relu"))
    model.add(L.Dropout(0.4))
    for w in widths[1:]:
        model.add(L.Dense(w, activation="relu"))
        model.add(L.Dropout(0.4))
    model.add(L.Dense(5, activation="softmax"))
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=2, batch_size=32, validation_data=val))


def g1_buggy() -> Run:
    return _g1([22, 64, 128, 64])


def g1_fixed() -> Run:
    return _g1([30, 10, 10])


# --------------------------------------------------------------------------- G#2
# kcct-fujimotolab/keras-super-resolution, train.py + networks/large.py (SRCNN).
# Data: photos resized to 128x128 RGB, /255; x = the photo shrunk 2x and
# nearest-upsampled back, y = the photo. Not offline: generated smooth colour
# images. Cut: 16x16 instead of 128x128 (same fully-convolutional layers:
# 9x9x256, 3x3x128, 5x5x3; at 32x32 one epoch of 256 images already takes
# ~12 s on 2 cores), 192 images, 2 epochs instead of 50 (the benchmark's fixed
# copy: 3000); batch 64 as published, so 6 steps.


def _sr_data(n: int = 192, size: int = 16, seed: int = 2):
    rng = data.rng(seed)
    y = np.clip(
        _smooth(rng, n, size, 3, size // 4) + rng.normal(0, 0.03, (n, size, size, 3)),
        0,
        1,
    )
    y = y.astype("float32")
    x = _resize(_resize(y, (size // 2, size // 2)), (size, size), "nearest").astype(
        "float32"
    )
    return x, y


def _g2(lr: float, loss: str, metrics: list[str]) -> Run:
    keras.utils.set_random_seed(0)
    x, y = _sr_data()
    model = keras.Sequential(
        [
            L.Input(x.shape[1:]),
            L.Conv2D(256, kernel_size=(9, 9), padding="same"),
            L.Activation("relu"),
            L.Conv2D(128, kernel_size=(3, 3), padding="same"),
            L.Activation("relu"),
            L.Conv2D(3, (5, 5), padding="same"),
            L.Activation("sigmoid"),
        ]
    )
    model.compile(
        loss=loss, optimizer=keras.optimizers.Adam(learning_rate=lr), metrics=metrics
    )
    return Run(model, x, y, fit=dict(epochs=2, batch_size=64))


def g2_buggy() -> Run:
    return _g2(1e-4, "binary_crossentropy", ["accuracy"])


def g2_fixed() -> Run:
    return _g2(1e-3, "mse", [])


# --------------------------------------------------------------------------- G#3
# ShyamPoovaiah/FacialKeypointsDetection, src/1_single_hidden_layer.py. Data:
# Kaggle facial keypoints training.csv after dropna: 2,140 96x96 grey faces /255
# flattened to 9,216 in [0, 1]; 30 keypoint coordinates (y - 48) / 48 in
# [-1, 1]. Not offline: generated images from 8 smooth components, keypoints a
# fixed template moved linearly by the same components. Cut: 1,000 faces,
# 2 epochs instead of 100.


def _faces(n: int = 1000, seed: int = 3):
    rng = data.rng(seed)
    basis = _smooth(rng, 8, 96, 1, 6).reshape(8, -1) - 0.5
    z = rng.normal(0.0, 1.0, (n, 8))
    x = np.clip(0.45 + 0.3 * z @ basis + rng.normal(0, 0.03, (n, 9216)), 0, 1).astype(
        "float32"
    )
    template = rng.uniform(-0.6, 0.6, 30)
    y = np.clip(template + 0.06 * z @ rng.normal(0, 1, (8, 30)), -1, 1).astype(
        "float32"
    )
    return x, y


def _g3(optimizer, fit: dict) -> Run:
    keras.utils.set_random_seed(0)
    x, y = _faces()
    model = keras.Sequential([L.Input((9216,)), L.Dense(50), L.Dense(100), L.Dense(30)])
    model.compile(optimizer=optimizer, loss="mean_squared_error", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=2, batch_size=32, **fit))


def g3_buggy() -> Run:
    return _g3(keras.optimizers.Adam(learning_rate=0.1), {})


def g3_fixed() -> Run:
    # SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True, clipnorm=1): decay dropped
    # (no Keras 3 equivalent; 1e-6 per step is negligible over these few steps).
    sgd = keras.optimizers.SGD(
        learning_rate=0.01, momentum=0.9, nesterov=True, clipnorm=1
    )
    return _g3(sgd, dict(validation_split=0.2, shuffle=True))


# --------------------------------------------------------------------------- G#4
# ronnyworm/keras_catsdogs, keras_catsdogs.py. Data: catsdogsdataset64 (64x64 RGB
# jpgs of dogs = 0 and cats = 1, /255, one-hot), not offline (zip not in the
# mirror): generated class-patterned photos. Cut: 600 train / 150 test
# images, 2 epochs instead of 20.


def _catsdogs(seed: int = 4):
    rng = data.rng(seed)
    x, y = _class_images(rng, 750, 64, 3, 2, grid=4, mix=0.35)
    x = x.astype("float32") / 255
    y = keras.utils.to_categorical(y, 2)
    return (x[:600], y[:600]), (x[600:], y[600:])


def _adadelta():
    # Keras 2's Adadelta() default: lr=1.0, rho=0.95, epsilon=1e-7 (Keras 3's is 0.001)
    return keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-7)


def g4_buggy() -> Run:
    keras.utils.set_random_seed(0)
    (x, y), val = _catsdogs()
    model = keras.Sequential(
        [
            L.Input((64, 64, 3)),
            L.Conv2D(32, kernel_size=(7, 7)),
            L.Activation("relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Conv2D(20, (5, 5)),
            L.Activation("relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Conv2D(20, (5, 5)),
            L.Activation("relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Conv2D(20, (3, 3)),
            L.Activation("relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Flatten(),
            L.Dense(2),
            L.Activation("softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer=_adadelta(), metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=2, batch_size=100, validation_data=val))


def g4_fixed() -> Run:
    keras.utils.set_random_seed(0)
    (x, y), val = _catsdogs()
    model = keras.Sequential(
        [
            L.Input((64, 64, 3)),
            L.Conv2D(16, kernel_size=(3, 3), activation="relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Conv2D(32, (3, 3), activation="relu"),
            L.Conv2D(32, (3, 3), activation="relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Conv2D(32, (3, 3), activation="relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Flatten(),
            L.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer=_adadelta(), metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=2, batch_size=50, validation_data=val))


# --------------------------------------------------------------------------- G#5
# ulmefors/Traffic-Sign-Classifier, train.py. Data: German traffic signs
# (GTSRB, Udacity pickle): 34,799 32x32 RGB uint8 images, 43 classes (the label
# csv is in the mirror, so the class frequencies are its; the images are not),
# 80/20 split. Generated class-patterned images 0..255; the model scales them itself (Lambda p/255 - 0.5). Cut: 2,560 +
# 512 images, 3 epochs instead of 10 (batch 512 as published: 15 steps).


# images per class in labels/train.csv
_SIGN_COUNTS = np.array(
    [180, 1980, 2010, 1260, 1770, 1650, 360, 1290, 1260, 1320, 1800, 1170, 1890, 1920]
    + [690, 540, 360, 990, 1080, 180, 300, 270, 330, 450, 240, 1350, 540, 210, 480]
    + [240, 390, 690, 210, 599, 360, 1080, 330, 180, 1860, 270, 300, 210, 210]
)


def _signs(seed: int = 5):
    rng = data.rng(seed)
    probs = _SIGN_COUNTS / _SIGN_COUNTS.sum()
    x, y = _class_images(rng, 3072, 32, 3, 43, grid=6, mix=0.6, noise=0.08, probs=probs)
    # GTSRB photos are dark (pixel mean ~85 of 255): gamma 1.6 darkens the pattern.
    # float 0..255, as Keras reads the uint8 array
    x = (255 * (x / 255.0) ** 1.6).astype("float32")
    y = keras.utils.to_categorical(y, 43)
    return (x[:2560], y[:2560]), (x[2560:], y[2560:])


def _g5(acts: tuple[str, str, str]) -> Run:
    keras.utils.set_random_seed(0)
    (x, y), val = _signs()
    model = keras.Sequential(
        [
            L.Input((32, 32, 3)),
            L.Lambda(lambda p: p / 255.0 - 0.5),
            L.Conv2D(3, (1, 1), activation=acts[0]),
            L.Conv2D(16, (5, 5), strides=(2, 2), activation=acts[1]),
            L.Conv2D(32, (3, 3), activation=acts[2]),
            L.MaxPooling2D(pool_size=(2, 2), strides=(2, 2)),
            L.Conv2D(64, (3, 3), activation="relu"),
            L.Conv2D(128, (3, 3), activation="relu"),
            L.Flatten(),
            L.Dropout(0.5),
            L.Dense(128, activation="relu"),
            L.Dropout(0.5),
            L.Dense(43, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return Run(model, x, y, fit=dict(epochs=3, batch_size=512, validation_data=val))


def g5_buggy() -> Run:
    # the buggy copy writes Conv2D + Activation('relu'); same computation
    return _g5(("relu", "relu", "relu"))


def g5_fixed() -> Run:
    return _g5(("sigmoid", "elu", "elu"))


# --------------------------------------------------------------------------- G#6
# eangelou/kerasma, kerasma.py. Data: Pima Indians diabetes (768 x 8, raw
# clinical values, 34.9 % positive); the file is in the mirror, not copied:
# generated per class from its column statistics (mean/std of the non-zero
# values, and the share of zeros that stand for missing values). Cut: 5 epochs
# instead of 150 (batch 10 as published).

# per column: (share of zeros, mean, std) for class 0, then class 1; min, max, integer
_PIMA = [
    # pregnancies, glucose, blood pressure, skin, insulin, BMI, pedigree, age
    ((0.146, 3.298, 3.014), (0.142, 4.866, 3.734), 0, 17, True),
    ((0.006, 110.6, 24.8), (0.007, 142.3, 29.5), 44, 199, True),
    ((0.038, 70.9, 12.1), (0.060, 75.3, 12.3), 24, 122, True),
    ((0.278, 27.2, 10.0), (0.328, 33.0, 10.3), 7, 99, True),
    ((0.472, 130.3, 102.3), (0.515, 206.8, 132.2), 14, 846, True),
    ((0.018, 30.9, 6.6), (0.007, 35.4, 6.6), 18.2, 67.1, False),
    ((0.0, 0.430, 0.299), (0.0, 0.550, 0.372), 0.078, 2.42, False),
    ((0.0, 31.2, 11.7), (0.0, 37.1, 10.9), 21, 81, True),
]


def _pima(n: int = 768, seed: int = 6):
    rng = data.rng(seed)
    y = (rng.uniform(size=n) < 268 / 768).astype("float32")
    x = np.zeros((n, 8))
    for j, (c0, c1, lo, hi, integer) in enumerate(_PIMA):
        zero, mean, std = (np.where(y == 1, a, b) for a, b in zip(c1, c0))
        v = np.clip(rng.normal(mean, std), lo, hi)
        v = np.round(v) if integer else v
        x[:, j] = np.where(rng.uniform(size=n) < zero, 0.0, v)
    return x.astype("float32"), y


def _g6(hidden: list[int], separate: bool) -> Run:
    keras.utils.set_random_seed(0)
    x, y = _pima()
    model = keras.Sequential([L.Input((8,))])
    for w in hidden:
        if separate:
            model.add(L.Dense(w))
            model.add(L.Activation("relu"))
        else:
            model.add(L.Dense(w, activation="relu"))
    if separate:
        model.add(L.Dense(1))
        model.add(L.Activation("sigmoid"))
    else:
        model.add(L.Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=5, batch_size=10))


def g6_buggy() -> Run:
    return _g6([12, 8], separate=True)


def g6_fixed() -> Run:
    return _g6([12, 24, 120, 36, 12], separate=False)


# --------------------------------------------------------------------------- G#7
# yetanotherdeveloper/kaggle-melbourne_properties, price-keras.py, the tanh
# network (``--type TFN``, default ``--model 20,20,1``, ``--loss
# mean_squared_error``, ``--dataset comp:train.csv``). Data: Kaggle House Prices
# train.csv (1,460 houses; 74 input columns, categorical ones mapped to small
# integers by the script; target SalePrice 34,900-755,000). The csv is in the
# mirror, not copied: generated from its per-column statistics (share of zeros,
# mean/std/min/max of the non-zero values, correlation with log price;
# categorical columns as integer codes 0..k-1) and log price ~ N(12.02, 0.40).
# Cut: 1,000 houses instead of 1,460, 1 epoch instead of 10 (batch_size=1 as
# published: 800 steps).

# numeric: (name, zero share, mean, std, min, max, corr with log price); categorical: (name, k)
_HOUSE = [
    ("Alley", 3),
    ("MSSubClass", 0.00, 56.9, 42.3, 20, 190, -0.07),
    ("MSZoning", 5),
    ("LotFrontage", 0.18, 70.0, 24.3, 21, 313, 0.18),
    ("LotArea", 0.00, 10516.8, 9977.8, 1300, 215245, 0.26),
    ("Street", 2),
    ("LotShape", 4),
    ("LandContour", 4),
    ("Utilities", 2),
    ("LotConfig", 5),
    ("LandSlope", 3),
    ("Neighborhood", 25),
    ("Condition1", 9),
    ("Condition2", 8),
    ("BldgType", 5),
    ("HouseStyle", 8),
    ("OverallQual", 0.00, 6.1, 1.4, 1, 10, 0.82),
    ("OverallCond", 0.00, 5.6, 1.1, 1, 9, -0.04),
    ("YearBuilt", 0.00, 1971.3, 30.2, 1872, 2010, 0.59),
    ("YearRemodAdd", 0.00, 1984.9, 20.6, 1950, 2010, 0.57),
    ("RoofStyle", 6),
    ("RoofMatl", 8),
    ("Exterior1st", 15),
    ("Exterior2nd", 16),
    ("MasVnrType", 5),
    ("MasVnrArea", 0.60, 254.7, 205.0, 1, 1600, 0.43),
    ("ExterQual", 4),
    ("ExterCond", 5),
    ("Foundation", 6),
    ("BsmtQual", 5),
    ("BsmtCond", 5),
    ("BsmtExposure", 5),
    ("BsmtFinType1", 7),
    ("BsmtFinSF1", 0.32, 652.3, 411.8, 2, 5644, 0.37),
    ("BsmtFinType2", 7),
    ("BsmtFinSF2", 0.89, 407.0, 284.1, 28, 1474, 0.00),
    ("BsmtUnfSF", 0.08, 617.1, 426.0, 14, 2336, 0.22),
    ("TotalBsmtSF", 0.03, 1084.9, 409.3, 105, 6110, 0.61),
    ("Heating", 6),
    ("HeatingQC", 5),
    ("CentralAir", 2),
    ("Electrical", 6),
    ("1stFlrSF", 0.00, 1162.6, 386.5, 334, 4692, 0.60),
    ("2ndFlrSF", 0.57, 802.9, 273.1, 110, 2065, 0.32),
    ("LowQualFinSF", 0.98, 328.2, 163.9, 53, 572, -0.04),
    ("GrLivArea", 0.00, 1515.5, 525.3, 334, 5642, 0.70),
    ("BsmtFullBath", 0.59, 1.0, 0.2, 1, 3, 0.24),
    ("BsmtHalfBath", 0.94, 1.0, 0.2, 1, 2, -0.01),
    ("FullBath", 0.01, 1.6, 0.5, 1, 3, 0.59),
    ("HalfBath", 0.63, 1.0, 0.1, 1, 2, 0.31),
    ("KitchenAbvGr", 0.00, 1.0, 0.2, 1, 3, -0.15),
    ("KitchenQual", 4),
    ("TotRmsAbvGrd", 0.00, 6.5, 1.6, 2, 14, 0.53),
    ("Functional", 7),
    ("Fireplaces", 0.47, 1.2, 0.4, 1, 3, 0.49),
    ("FireplaceQu", 6),
    ("GarageType", 7),
    ("GarageFinish", 4),
    ("GarageCars", 0.06, 1.9, 0.6, 1, 4, 0.68),
    ("GarageArea", 0.06, 500.8, 185.6, 160, 1418, 0.65),
    ("GarageQual", 6),
    ("GarageCond", 6),
    ("PavedDrive", 3),
    ("WoodDeckSF", 0.52, 196.8, 112.2, 12, 857, 0.33),
    ("OpenPorchSF", 0.45, 84.7, 68.9, 4, 547, 0.32),
    ("EnclosedPorch", 0.86, 154.1, 76.4, 19, 552, -0.15),
    ("3SsnPorch", 0.98, 207.4, 99.7, 23, 508, 0.05),
    ("ScreenPorch", 0.92, 189.6, 77.6, 40, 480, 0.12),
    ("PoolArea", 0.995, 575.4, 83.2, 480, 738, 0.07),
    ("PoolQC", 4),
    ("Fence", 5),
    ("MiscFeature", 5),
    ("MiscVal", 0.96, 1221.0, 2338.4, 54, 15500, -0.02),
    ("SaleCondition", 6),
]


def _houses(n: int = 1000, seed: int = 7):
    rng = data.rng(seed)
    # a latent "size/quality" shared by the numeric columns and the price
    z = rng.normal(0.0, 1.0, n)
    cols = []
    for spec in _HOUSE:
        if len(spec) == 2:
            cols.append(rng.integers(0, spec[1], n).astype(float))
            continue
        _, zero, mean, std, lo, hi, r = spec
        v = mean + std * (r * z + np.sqrt(1 - r * r) * rng.normal(0.0, 1.0, n))
        v = np.round(np.clip(v, lo, hi))
        cols.append(np.where(rng.uniform(size=n) < zero, 0.0, v))
    x = np.stack(cols, axis=1).astype("float32")
    logp = 12.02 + 0.40 * (0.9 * z + np.sqrt(1 - 0.81) * rng.normal(0.0, 1.0, n))
    y = np.round(np.exp(np.clip(logp, np.log(34900), np.log(755000)))).astype("float32")
    return x, y


def _tanh_net(n_features: int) -> keras.Model:
    model = keras.Sequential([L.Input((n_features,))])
    model.add(L.Dense(20, kernel_initializer="glorot_normal"))
    model.add(L.Activation("tanh"))
    model.add(L.Dense(20, kernel_initializer="glorot_normal"))
    model.add(L.Activation("tanh"))
    model.add(L.Dense(1))
    model.add(L.Activation("linear"))
    return model


def g7_buggy() -> Run:
    keras.utils.set_random_seed(0)
    x, y = _houses()
    model = _tanh_net(x.shape[1])
    model.compile(
        loss="mean_squared_error",
        optimizer=keras.optimizers.Adam(),
        metrics=["accuracy"],
    )
    return Run(model, x, y, fit=dict(epochs=1, batch_size=1, validation_split=0.2))


def g7_fixed() -> Run:
    keras.utils.set_random_seed(0)
    x, y = _houses()
    # At the default arguments the patch changes nothing that trains: the same
    # 20-20-1 tanh model (now built from --model), an optional L1 penalty
    # (--regularize, off), and no accuracy metric. So the fixed twin is the
    # corrected script run with its own --normalize option (normalize_input:
    # a StandardScaler per input column), as its author ran his experiments
    # (info.txt); the target stays raw SalePrice under MSE, as in the script.
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    model = _tanh_net(x.shape[1])
    model.compile(loss="mean_squared_error", optimizer=keras.optimizers.Adam())
    return Run(
        model,
        x.astype("float32"),
        y,
        fit=dict(epochs=1, batch_size=1, validation_split=0.2),
    )


# --------------------------------------------------------------------------- G#8
# alexander-travov/gol_nn, gol.py: learn one step of Conway's Game of Life on
# 3x3 toroidal fields. Data generated exactly as the program does (8,000 train,
# 2,000 validation fields, alive with p=0.5, wrap-padded to 5x5). Nothing cut
# (2 epochs, batch 64).


def _gol_step(field: np.ndarray) -> np.ndarray:
    neighbours = np.zeros(field.shape, dtype=np.int32)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx or dy:
                neighbours += np.roll(np.roll(field, dx, 2), dy, 1)
    return np.logical_or(
        neighbours == 3, np.logical_and(field, neighbours == 2)
    ).astype(np.int32)


def _gol(n: int, rng: np.random.Generator, h: int = 3, w: int = 3):
    x = (rng.uniform(size=(n, h, w, 1)) < 0.5).astype(np.int32)
    y = _gol_step(x)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    return xp.astype("float32"), y.astype("float32")


def _g8(loss: str, optimizer) -> Run:
    keras.utils.set_random_seed(0)
    rng = data.rng(8)
    x, y = _gol(8000, rng)
    val = _gol(2000, rng)
    model = keras.Sequential(
        [
            L.Input((5, 5, 1)),
            L.Conv2D(
                10, kernel_size=(3, 3), strides=(1, 1), padding="valid", use_bias=True
            ),
            L.Activation("relu"),
            L.Conv2D(
                20, kernel_size=(1, 1), strides=(1, 1), padding="same", use_bias=True
            ),
            L.Activation("relu"),
            L.Conv2D(
                1, kernel_size=(1, 1), strides=(1, 1), padding="same", use_bias=True
            ),
            L.Activation("sigmoid"),
        ]
    )
    model.compile(loss=loss, optimizer=optimizer, metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=2, batch_size=64, validation_data=val))


def g8_buggy() -> Run:
    return _g8("binary_crossentropy", "adam")


def g8_fixed() -> Run:
    return _g8("mse", keras.optimizers.Adam(learning_rate=0.01))


# --------------------------------------------------------------------------- G#9
# tautvydasversockas/MovieReviews_Keras, MovieReviewClassification.py. Data:
# IMDB reviews (keras.datasets.imdb, num_words=10000) as 10,000-dim multi-hot
# vectors, binary sentiment; train on x_train[10000:] (15,000), validate on
# x_train[:10000]. Not offline (download): generated reviews of 60-500 words
# drawn with Zipf frequencies, where 400 words are 4x likelier in positive
# reviews and 400 others in negative ones. Cut: 2,048 train + 1,024 validation reviews (epochs 4 / 7 and batch
# 512 as published).


def _imdb(n_train: int = 2048, n_val: int = 1024, seed: int = 9):
    rng = data.rng(seed)
    n, dim = n_train + n_val, 10000
    y = rng.integers(0, 2, n).astype("float32")
    base = 1.0 / np.arange(1, dim + 1) ** 1.05
    base[:4] = 0.0  # 0 padding, 1 start, 2 oov, 3 unused: set below
    pos, neg = rng.choice(np.arange(20, dim), (2, 400), replace=False)
    x = np.zeros((n, dim), dtype="float32")
    x[:, 1] = 1.0  # the start token
    x[:, 2] = 1.0  # out-of-vocabulary words: almost every review has one
    for label in (0, 1):
        p = base.copy()
        p[pos if label else neg] *= 4.0
        p /= p.sum()
        rows = np.flatnonzero(y == label)
        lengths = rng.integers(60, 500, len(rows))
        for r, k in zip(rows, lengths):
            x[r, rng.choice(dim, k, p=p)] = 1.0
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def g9_buggy() -> Run:
    keras.utils.set_random_seed(0)
    (x, y), val = _imdb()
    model = keras.Sequential(
        [
            L.Input((10000,)),
            L.Dense(16),
            L.Activation("relu"),
            L.Dense(16),
            L.Activation("relu"),
            L.Dense(1),
            L.Activation("sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.001),
        loss="binary_crossentropy",
        metrics=["binary_accuracy"],
    )
    return Run(model, x, y, fit=dict(epochs=4, batch_size=512, validation_data=val))


def g9_fixed() -> Run:
    keras.utils.set_random_seed(0)
    (x, y), val = _imdb()
    model = keras.Sequential(
        [
            L.Input((10000,)),
            L.Dense(16, activation="relu"),
            L.Dropout(0.5),
            L.Dense(16, activation="relu"),
            L.Dropout(0.5),
            L.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.001),
        loss="binary_crossentropy",
        metrics=["binary_accuracy"],
    )
    return Run(model, x, y, fit=dict(epochs=7, batch_size=512, validation_data=val))


# -------------------------------------------------------------------------- G#10
# sammyhaq/hotdog-sandwich, code/trainModel.py + ImageTools.py. Data: food
# (label 0) and sandwich (label 1) photos, randomly rotated and 5x5-blurred,
# resized to img_size (buggy 64, fixed 128), greyscaled, /255 and
# histogram-equalised (values spread uniformly over [0, 1]), one-hot; 80/20
# train/test split, then validation_split=0.1. Photos not offline: generated
# class-patterned images, equalised the same way (rank transform). Cut: images
# at half size (buggy 32x32, fixed 64x64; same layers: at 64x64 the buggy
# Flatten is 100,352 wide and Dense(240) holds 24M weights, ~20 s per epoch on
# 2 cores; at 32x32 it is 18,432 wide, 4.4M weights), 640 images instead of
# 2 x classSize (2,000 / 10,000), 2 epochs instead of 15 (batch 32, the Keras
# default, as published).

_HOTDOG_SIZE = 32  # buggy; the fixed twin gets twice this, as 64 -> 128 in the patch


def _hotdog(size: int, seed: int = 10):
    rng = data.rng(seed)
    x, y = _class_images(rng, 640, size, 3, 2, grid=4, mix=0.4)
    x = 0.2989 * x[..., 0] + 0.5870 * x[..., 1] + 0.1140 * x[..., 2]
    x = x + rng.uniform(0, 1e-3, x.shape)  # break ties, then equalise each image
    flat = x.reshape(len(x), -1)
    ranks = flat.argsort(1).argsort(1)
    x = ((ranks + 1) / flat.shape[1]).reshape(x.shape + (1,)).astype("float32")
    return x, keras.utils.to_categorical(y, 2)


def g10_buggy() -> Run:
    keras.utils.set_random_seed(0)
    x, y = _hotdog(_HOTDOG_SIZE)
    model = keras.Sequential(
        [
            L.Input((_HOTDOG_SIZE, _HOTDOG_SIZE, 1)),
            L.Conv2D(8, (5, 5), padding="valid"),
            L.Dropout(0.5),
            L.Activation("relu"),
            L.Conv2D(16, (3, 3)),
            L.Dropout(0.5),
            L.Activation("relu"),
            L.Conv2D(32, (3, 3)),
            L.Dropout(0.5),
            L.Activation("relu"),
            L.Flatten(),
            L.Dense(240),
            L.Activation("relu"),
            L.Dense(120),
            L.Dense(2),
            L.Activation("softmax"),
        ]
    )
    model.compile(
        optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=2, batch_size=32, validation_split=0.1))


def g10_fixed() -> Run:
    keras.utils.set_random_seed(0)
    x, y = _hotdog(2 * _HOTDOG_SIZE)
    model = keras.Sequential(
        [
            L.Input((2 * _HOTDOG_SIZE, 2 * _HOTDOG_SIZE, 1)),
            L.Conv2D(16, (8, 8), strides=(4, 4), padding="valid"),
            L.ELU(),
            L.Conv2D(32, (5, 5), strides=(2, 2), padding="same"),
            L.ELU(),
            L.Conv2D(64, (5, 5), strides=(2, 2), padding="same"),
            L.Flatten(),
            L.Dropout(0.2),
            L.ELU(),
            L.Dense(512),
            L.ELU(),
            L.Dense(2),
            L.Activation("softmax"),
        ]
    )
    model.compile(
        optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"]
    )
    return Run(model, x, y, fit=dict(epochs=2, batch_size=32, validation_split=0.1))


# -------------------------------------------------------------------------- G#11
# vincenty2022/Averaging_Neural_Networks, keras_net.py: learn the average of two
# integers 0..100 (inputs and target /100). Data generated exactly as the
# program does. Cut: 1 epoch of the 10,000 samples instead of 10 (batch 10).


def _averages(n: int = 10000, seed: int = 11):
    rng = data.rng(seed)
    ab = rng.integers(0, 101, (n, 2)).astype("float32")
    return ab / 100, (ab.sum(1) / 2 / 100).astype("float32")


def g11_buggy() -> Run:
    keras.utils.set_random_seed(0)
    x, y = _averages()
    model = keras.Sequential([L.Input((2,)), L.Dense(2), L.Dense(1)])
    model.compile(optimizer="rmsprop", loss="mse", metrics=["accuracy"])
    return Run(model, x, y, fit=dict(epochs=1, batch_size=10))


def g11_fixed() -> Run:
    keras.utils.set_random_seed(0)
    x, y = _averages()
    model = keras.Sequential(
        [L.Input((2,)), L.Dense(2), L.Dense(2, activation="relu"), L.Dense(1)]
    )
    model.compile(optimizer="rmsprop", loss="mse")
    return Run(model, x, y, fit=dict(epochs=1, batch_size=10))


def _gh(repo: str) -> str:
    return f"https://github.com/{repo}"


PROGRAMS: list[Program] = [
    Program(
        "G#1",
        _gh("Jacobvs/DDOS-ML-Detection"),
        "raw packet features (PKT_ID ~1e6, NUMBER_OF_BYTE ~1e6-1e8, BYTE_RATE ~1e5) go unscaled "
        "into a uniform-initialised ReLU MLP, loss ~1e4; the patch only shrinks 22-64-128-64 to "
        "30-10-10 and keeps the raw inputs",
        ("input_scale",),
        g1_buggy,
        g1_fixed,
    ),
    Program(
        "G#2",
        _gh("kcct-fujimotolab/keras-super-resolution"),
        "SRCNN trained with binary_crossentropy and Adam lr 1e-4 converges slowly; the patch "
        "switches to MSE and lr 1e-3",
        (),
        g2_buggy,
        g2_fixed,
        not_dynamics="loss/learning-rate tuning: BCE on [0, 1] pixel targets under a sigmoid output "
        "is a valid loss and lr 1e-4 is ordinary for Adam; the buggy model trains, only more "
        "slowly (the benchmark's copy also adds a meaningless accuracy metric)",
    ),
    Program(
        "G#3",
        _gh("ShyamPoovaiah/FacialKeypointsDetection"),
        "Adam(lr=0.1) on a linear 9216-50-100-30 keypoint regression: steps far too large, the "
        "loss blows up to ~1e7; the patch uses SGD lr 0.01, Nesterov momentum, clipnorm=1",
        ("update_ratio", "loss_divergence", "exploding_gradient", "non_finite"),
        g3_buggy,
        g3_fixed,
    ),
    Program(
        "G#4",
        _gh("ronnyworm/keras_catsdogs"),
        "cats-vs-dogs CNN with 7x7/5x5 filters that shrink 64x64 to 1x1x20 and batch 100 "
        "reached no useful accuracy; the patch uses 3x3 filters, one more conv, batch 50",
        (),
        g4_buggy,
        g4_fixed,
        not_dynamics="architecture/batch-size tuning for accuracy (commit: 'smaller batches, "
        "smaller filters, one more layer -> 0.718 accuracy'); nothing in the code makes the "
        "gradients pathological, and on generated data both versions learn",
    ),
    Program(
        "G#5",
        _gh("ulmefors/Traffic-Sign-Classifier"),
        "ReLU in the first three convs (a 3-filter 1x1 colour layer, then 5x5/2 and 3x3) can "
        "die; the patch uses sigmoid, elu, elu there",
        ("dead_relu",),
        g5_buggy,
        g5_fixed,
    ),
    Program(
        "G#6",
        _gh("eangelou/kerasma"),
        "raw Pima features (glucose ~120, insulin up to 846) go unscaled into a 12-8-1 ReLU net "
        "(first-epoch loss ~14); the patch only deepens the net (12-24-120-36-12-1) and keeps "
        "the raw inputs",
        ("input_scale",),
        g6_buggy,
        g6_fixed,
    ),
    Program(
        "G#7",
        _gh("yetanotherdeveloper/kaggle-melbourne_properties"),
        "raw House Prices features (LotArea ~1e4, years ~2000) saturate the 20-20 tanh layers, "
        "regressing raw SalePrice (~1.8e5) under MSE; fixed twin = the script's --normalize",
        ("input_scale", "saturation"),
        g7_buggy,
        g7_fixed,
    ),
    Program(
        "G#8",
        _gh("alexander-travov/gol_nn"),
        "Game-of-Life CNN with binary_crossentropy and Adam lr 1e-3 is still learning after 2 "
        "epochs (accuracy ~0.77); the patch uses MSE and Adam lr 0.01 and reaches 1.0",
        (),
        g8_buggy,
        g8_fixed,
        not_dynamics="convergence speed within 2 epochs: BCE with a sigmoid output on binary "
        "targets is the textbook loss and lr 1e-3 the Adam default; the buggy model learns "
        "steadily, it needs more epochs or a larger step",
    ),
    Program(
        "G#9",
        _gh("tautvydasversockas/MovieReviews_Keras"),
        "IMDB 16-16-1 MLP overfits; the patch adds Dropout(0.5) after both hidden layers and "
        "trains 7 epochs instead of 4",
        (),
        g9_buggy,
        g9_fixed,
        not_dynamics="overfitting (commit: 'Reduced overfitting by adding dropout layers'): a "
        "generalisation problem, training itself is healthy",
    ),
    Program(
        "G#10",
        _gh("sammyhaq/hotdog-sandwich"),
        "three stride-1 convs without pooling feed a 100k-wide Flatten into Dense(240) (24M "
        "weights, Adam's 1e-3 steps ~20 % of their init scale) whose ReLUs die; the patch uses "
        "the comma.ai strided ELU net",
        ("dead_relu", "update_ratio"),
        g10_buggy,
        g10_fixed,
    ),
    Program(
        "G#11",
        _gh("vincenty2022/Averaging_Neural_Networks"),
        "averaging net written as Dense(2) -> Dense(1) without the intended ReLU hidden layer "
        "(patch: add Dense(2, relu)); the buggy copy also tracks accuracy on a regression",
        (),
        g11_buggy,
        g11_fixed,
        not_dynamics="the linear 2-2-1 net represents the average exactly and trains to ~1e-4 MSE; "
        "the patch restores an intended hidden layer (which, with 2 ReLU units, trains worse), and "
        "accuracy on a regression is a metric mistake, not a training fault",
    ),
]


# Where the published fix leaves a real problem in place (a finding on the
# fixed twin is then true): see the README's real-world benchmark.
_AMEND = {
    "G#1": dict(fixed_note="the raw packet features (~1e6) are kept"),
    "G#6": dict(fixed_note="the raw Pima features (up to 846) are kept"),
}
PROGRAMS = [
    dataclasses.replace(p, **_AMEND[p.id]) if p.id in _AMEND else p for p in PROGRAMS
]
